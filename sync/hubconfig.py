"""The hub's configuration: one YAML file (``checkpoint hub --config hub.yaml``) validated by pydantic.

Unknown keys are rejected, relative paths are taken from the file's folder, and
an error names the file, the line and the key (``hub.yaml:7: storage.url: ...``).
See ``deploy/hub.example.yaml``. No secret is ever written here: the broker
identity is a client certificate, and a PostgreSQL password comes from
``PGPASSWORD`` / ``~/.pgpass`` (libpq), never from the URL in this file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from sync.forward import ForwardSpec
from sync.publisher import BrokerSettings
from sync.yamlpos import line_of

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_TYPE_PATTERN = re.compile(r"^[a-z0-9_.*?\[\]-]+$")


class HubConfigError(ValueError):
    """A hub config that cannot be read or is invalid; the message names file, line and key."""


def _relative(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return (Path(base) / value).resolve() if base is not None and not value.is_absolute() else value


ConfigPath = Annotated[Path, AfterValidator(_relative)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TlsFiles(Strict):
    ca_file: ConfigPath = Field(description="CA bundle that signed the broker's certificate.")
    cert_file: ConfigPath = Field(description="This hub's client certificate (CN hub-<name>, or its id at a partner).")
    key_file: ConfigPath = Field(description="Private key of that certificate.")


class BrokerConfig(Strict):
    url: str = Field("mqtt://127.0.0.1:1883", pattern=r"^mqtts?://[^/\s:]+(:\d{1,5})?$",
                     description="mqtt://host:port, or mqtts://host:port with a tls section.")
    tls: TlsFiles | None = Field(None, description="Mutual TLS files; required for mqtts://.")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive in seconds.")

    @model_validator(mode="after")
    def _tls_for_mqtts(self) -> BrokerConfig:
        if self.url.startswith("mqtts://") and self.tls is None:
            raise ValueError("mqtts:// needs a tls section (ca_file, cert_file, key_file)")
        return self

    def settings(self) -> BrokerSettings:
        tls = None if self.tls is None else (str(self.tls.ca_file), str(self.tls.cert_file), str(self.tls.key_file))
        return BrokerSettings.from_url(self.url, tls=tls, keepalive=self.keepalive)


def _storage_url(value: str) -> str:
    if value.startswith(("postgresql://", "postgres://")):
        if urlsplit(value).password:
            raise ValueError("no password in the URL: use PGPASSWORD or ~/.pgpass")
        return value
    if "://" in value:
        raise ValueError("a SQLite file path, or a postgresql:// URL")
    return value


class StorageConfig(Strict):
    url: Annotated[str, AfterValidator(_storage_url)] = Field(
        "hub.db", description="SQLite file (relative to this file), or postgresql://user@host:port/db."
    )
    batch_max: int = Field(500, ge=1, le=10000, description="Most events stored in one transaction.")

    def target(self, base_dir: Path | None) -> str:
        if self.url.startswith(("postgresql://", "postgres://")) or base_dir is None:
            return self.url
        path = Path(self.url)
        return str(path if path.is_absolute() else (base_dir / path).resolve())


class DownlinkSection(Strict):
    signing_key: ConfigPath | None = Field(
        None, description="Ed25519 private key (checkpoint keys create) that signs watchlists and config."
    )


def _type_pattern(value: str) -> str:
    if not _TYPE_PATTERN.match(value):
        raise ValueError(f"{value!r} is not an event type pattern (e.g. alert.*, session.risk)")
    return value


class ForwardConfig(Strict):
    partner_id: Annotated[str, Field(pattern=ID_PATTERN)] = Field(
        description="This hub's id at the partner: the CN of its certificate on the partner's broker."
    )
    broker: BrokerConfig = Field(description="The partner's broker.")
    topic_prefix: str = Field("checkpoint", pattern=r"^[A-Za-z0-9_-]+$", description="The partner's topic prefix.")
    types: list[Annotated[str, AfterValidator(_type_pattern)]] = Field(
        min_length=1, description="Event types forwarded (fnmatch patterns), e.g. [alert.*, session.risk]."
    )
    window: int = Field(500, ge=1, le=10000, description="Forwarded events in flight.")
    ack_timeout_s: float = Field(10.0, gt=0, description="Resend what the partner has not acknowledged after this.")

    def spec(self) -> ForwardSpec:
        return ForwardSpec(self.partner_id, tuple(self.types))


class HubConfig(Strict):
    """The whole hub configuration file."""

    id: Annotated[str, Field(pattern=ID_PATTERN)] = Field("hub", description="Name of this hub (logs, client ids).")
    broker: BrokerConfig = Field(description="The broker the edges publish to.")
    storage: StorageConfig = Field(description="Where events are stored.")
    workers: int = Field(1, ge=1, le=32, description="Workers in this process (more can run in other processes).")
    topic_prefix: str = Field("checkpoint", pattern=r"^[A-Za-z0-9_-]+$", description="First level of every topic.")
    gap_timeout_s: float = Field(10.0, gt=0, description="Ask an edge to resend a gap older than this.")
    downlink: DownlinkSection = Field(description="Signed downlink (watchlists, config).")
    forward: ForwardConfig | None = Field(None, description="Forward selected event types to a partner hub.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")

    @model_validator(mode="before")
    @classmethod
    def _sections_default_to_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {"broker": {}, "storage": {}, "downlink": {}} | data
        return data


def redact_url(url: str) -> str:
    """A URL fit for a log line (no password)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def load_hub_config(path: str | Path) -> HubConfig:
    """Read and validate ``path``; ``HubConfigError`` names the file, the line and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HubConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or 'not UTF-8'}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise HubConfigError(f"{path}{f':{mark.line + 1}' if mark else ''}: YAML syntax error: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise HubConfigError(f"{path}: YAML error: {exc}") from exc
    if not isinstance(data, dict):
        raise HubConfigError(f"{path}:1: the hub config must be a mapping (broker, storage, ...)")
    try:
        return HubConfig.model_validate(data, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = line_of(root, loc)
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        where = f"{path}:{line}" if line is not None else str(path)
        raise HubConfigError(f"{where}: {dotted}: {first['msg'].removeprefix('Value error, ')}{more}") from None
