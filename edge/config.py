"""The edge configuration: one YAML file validated by pydantic.

Unknown keys are rejected, every field is described, relative paths are taken
from the config file's folder, and every error names the file, the line and the
key (``edge.yaml:14: lanes[0].cameras[0].url: ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drivers.camera.registry import create_camera
from drivers.errors import InvalidDeviceURL
from drivers.serial import protocols
from drivers.serial import record as record_url
from drivers.serial.framing import make_framer
from drivers.serial.transport import SerialSettings
from edge.errors import ConfigError
from edge.secrets import Secret
from sync.yamlpos import line_of

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Ident = Annotated[str, Field(pattern=ID_PATTERN)]


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]


def _camera_url(url: str) -> str:
    try:
        create_camera(url)  # builds the driver object only: validates scheme and options, opens nothing
    except InvalidDeviceURL as exc:
        raise ValueError(str(exc)) from None
    return url


class Strict(BaseModel):
    # validate_default: default paths are resolved against the config folder too.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SiteConfig(Strict):
    id: Ident = Field(description="Crossing point id, e.g. KZ-KHORGOS-ROAD.")
    name: str = Field("", description="Human name of the crossing point, shown on the terminal.")
    country: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code of the operating service."
    )


class EdgeBoxConfig(Strict):
    id: Ident = Field(description="Id of this edge box; its MQTT identity and the edge_id of every event.")
    data_dir: ConfigPath = Field(Path("data"), description="Folder for runtime state (driver journals, backups).")


class CameraConfig(Strict):
    id: Ident = Field(description="Camera id, unique on this edge.")
    url: Annotated[str, AfterValidator(_camera_url)] = Field(
        description="Source URL: sim://xray?seed=N&fps=F, file:///path?loop=1, folder:///dir, rtsp://..., http://..., usb://N."
    )
    role: Literal["xray", "overview", "plate", "undercarriage"] = Field(
        "xray", description="What the camera shows; X-ray scans are analysed by the detector."
    )
    evidence: Literal["all", "none"] = Field(
        "all", description="Keep every analysed frame as an evidence image ('all'), or frames only ('none')."
    )
    jpeg_quality: int = Field(90, ge=50, le=100, description="JPEG quality of evidence images.")


def _protocol(name: str) -> str:
    try:
        protocols.get(name)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return name


def _serial_url(url: str) -> str:
    if url.startswith("record:"):
        try:
            record_url.parse(url)
        except InvalidDeviceURL as exc:
            raise ValueError(str(exc)) from None
    return url


def _unescape(text: str) -> bytes:
    """``"S\\r\\n"`` as written in YAML to the bytes sent to the device."""
    try:
        return text.encode("latin-1").decode("unicode_escape").encode("latin-1")
    except (UnicodeEncodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a byte string with \\r \\n \\xNN escapes: {exc.reason}") from None


class ScannerConfig(Strict):
    id: Ident = Field(description="Device id, unique on this edge, e.g. mrz-1.")
    url: Annotated[str, AfterValidator(_serial_url)] = Field(
        description="pyserial URL: /dev/serial/by-id/..., /dev/ttyUSB0, socket://host:port, rfc2217://host:port;"
        " record:///DIR#URL records the device's bytes."
    )
    protocol: Annotated[str, AfterValidator(_protocol)] = Field(
        description="Parser: mrz, barcode, scale, plate, radiation, rfid or raw."
    )
    framing: dict[str, Any] | None = Field(
        None, description="Override of the protocol's framing, e.g. {kind: terminator, terminator: cr}."
    )
    serial: SerialSettings = Field(description="Line settings (baudrate, bytesize, parity, stopbits, flow control).")
    idle_flush_ms: int = Field(
        500, ge=10, le=60000, description="Idle time after which a half-sent frame is kept as a partial reading."
    )
    poll: str | None = Field(None, description="Request sent to polled devices, e.g. MT-SICS 'S\\r\\n'.")
    poll_every_s: float = Field(1.0, gt=0, description="How often the poll request is sent.")

    @model_validator(mode="before")
    @classmethod
    def _serial_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "serial" not in data:
            data = data | {"serial": {}}
        return data

    @model_validator(mode="after")
    def _framing_is_valid(self) -> ScannerConfig:
        if self.framing is not None:
            try:
                make_framer(**self.framing)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"framing: {exc}") from None
        return self

    @field_validator("poll")
    @classmethod
    def _poll_is_encodable(cls, value: str | None) -> str | None:
        if value is not None:
            _unescape(value)
        return value

    def poll_bytes(self) -> bytes | None:
        return None if self.poll is None else _unescape(self.poll)


class LaneConfig(Strict):
    id: Ident = Field(description="Lane id, unique on this edge, e.g. lane-1.")
    name: str = Field("", description="Name shown on the terminal.")
    kind: Literal["road", "rail"] = Field("road", description="Road or rail lane.")
    direction: Literal["entry", "exit"] = Field("entry", description="Direction of traffic through the lane.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras and scanners producing images.")
    scanners: list[ScannerConfig] = Field(
        default_factory=list, description="Serial devices: document, barcode, plate, RFID readers, scales, radiation."
    )


class StoreConfig(Strict):
    path: ConfigPath = Field(Path("data/edge.db"), description="SQLite database file (WAL, synchronous=FULL).")
    evidence_dir: ConfigPath = Field(Path("data/evidence"), description="Folder of evidence images named by SHA-256.")
    batch_max: int = Field(500, ge=1, le=10000, description="Most events committed in one transaction.")
    batch_wait_ms: int = Field(
        20, ge=0, le=1000, description="How long the writer waits to fill a batch after the first write arrives."
    )
    queue_max: int = Field(20000, ge=100, description="Writes queued for the writer before submitters block.")
    max_db_mb: int | None = Field(
        None, ge=1, description="Cap on the database file (SQLite max_page_count); absent: the disk is the limit."
    )


class TlsConfig(Strict):
    ca_file: ConfigPath = Field(description="CA bundle that signed the broker's certificate.")
    cert_file: ConfigPath = Field(description="This edge's client certificate (its CN is the edge id).")
    key_file: ConfigPath = Field(description="Private key of the client certificate.")


class DownlinkConfig(Strict):
    enabled: bool = Field(False, description="Receive signed watchlists and config from the hub (needs sync).")
    trusted_keys: list[ConfigPath] = Field(
        default_factory=list, description="PEM public keys of the hub (checkpoint keys show); a document must verify."
    )
    store: ConfigPath = Field(Path("data/downlink.db"), description="SQLite file of applied and rejected documents.")

    @model_validator(mode="after")
    def _keys_when_enabled(self) -> DownlinkConfig:
        if self.enabled and not self.trusted_keys:
            raise ValueError("trusted_keys: at least one hub public key is needed to accept a downlink")
        return self


class SyncConfig(Strict):
    enabled: bool = Field(False, description="Publish the outbox to the hub over MQTT.")
    broker: str = Field(
        "mqtt://127.0.0.1:1883",
        pattern=r"^mqtts?://[^/\s]+$",
        description="Broker URL, mqtt://host:port or mqtts://host:port.",
    )
    topic_prefix: str = Field("checkpoint", pattern=r"^[A-Za-z0-9_-]+$", description="First level of every topic.")
    username: str | None = Field(None, description="MQTT user name when not using certificate identity.")
    password: Secret | None = Field(None, description="MQTT password: {env: VAR} or {credential: NAME}.")
    tls: TlsConfig | None = Field(None, description="Mutual TLS settings; required for mqtts://.")
    window: int = Field(
        1000, ge=1, le=10000, description="Events in flight (published, not yet acked by the hub); bounds memory."
    )
    ack_timeout_s: float = Field(10.0, gt=0, description="Resend an event the hub has not acknowledged after this.")
    downlink: DownlinkConfig = Field(description="Signed downlink from the hub, on the same connection.")

    @model_validator(mode="before")
    @classmethod
    def _downlink_defaults_to_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and "downlink" not in data:
            data = data | {"downlink": {}}  # validated like an empty section, so its paths see the context
        return data

    @model_validator(mode="after")
    def _tls_for_mqtts(self) -> SyncConfig:
        if self.broker.startswith("mqtts://") and self.tls is None:
            raise ValueError("mqtts:// needs a tls section (ca_file, cert_file, key_file)")
        return self


class DetectorConfig(Strict):
    model: ConfigPath = Field(description="ONNX detector in the Ultralytics YOLOv8/YOLO11 export layout.")
    conf: float = Field(0.25, ge=0, le=1, description="Default score threshold.")
    class_conf: dict[str, float] = Field(
        default_factory=dict, description="Per-class score thresholds by class name, e.g. {weapon: 0.2}."
    )
    iou: float = Field(0.5, gt=0, le=1, description="IoU threshold of class-aware NMS.")
    threads: int | None = Field(
        None, ge=1, le=64, description="Threads per inference (default: 1, with one frame in flight per core)."
    )
    parallel: int | None = Field(
        None, ge=1, le=64, description="Frames of one camera analysed at once (default: enough to busy every core)."
    )
    opencv_threads: int | None = Field(
        None, ge=1, le=64,
        description="Threads of OpenCV's pool for resizing and colour work (default: 1, as frames in flight fill"
        " the cores).",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["cpu"], description="Execution providers in order: cpu, cuda, openvino, tensorrt."
    )
    tiling: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Tile large scans with overlap ('auto': when the frame would shrink more than 2x, unless the"
        " model's metadata says tiling: never, as the shipped model's does).",
    )
    tile_overlap: float = Field(0.2, ge=0, lt=0.9, description="Overlap between neighbouring tiles.")
    class_names: list[str] | None = Field(None, description="Class names, only for models without metadata.")
    imgsz: tuple[int, int] | None = Field(None, description="Input [height, width], only for models without metadata.")


class TerminalConfig(Strict):
    host: str = Field("127.0.0.1", description="Address the inspector terminal listens on (0.0.0.0: every interface).")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the terminal (0: any free port, logged at start).")
    session_lifetime_min: int = Field(
        480, ge=1, le=7 * 24 * 60, description="Minutes a login lasts; after it the user logs in again."
    )
    secure_cookie: bool | None = Field(
        None, description="Send the session cookie over HTTPS only (default: on when tls_cert is set)."
    )
    tls_cert: ConfigPath | None = Field(None, description="PEM certificate (chain) for HTTPS; absent: plain HTTP.")
    tls_key: ConfigPath | None = Field(None, description="PEM private key of tls_cert.")
    login_max_failures: int = Field(5, ge=1, description="Failed logins per user within the window before a pause.")
    login_max_failures_ip: int = Field(20, ge=1, description="Failed logins per address within the window.")
    login_window_s: int = Field(900, ge=10, description="Window of the login rate limits, seconds.")
    banner: str = Field("", max_length=200, description="A line shown on every page, e.g. 'Training system'.")

    @model_validator(mode="after")
    def _tls_pair(self) -> TerminalConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class MetricsConfig(Strict):
    host: str = Field("127.0.0.1", description="Address of the Prometheus endpoint (/metrics, /healthz).")
    port: int = Field(9108, ge=0, le=65535, description="TCP port of the endpoint (0: any free port).")


class RetentionConfig(Strict):
    evidence_quota_mb: float = Field(
        20000, gt=0, description="Evidence files kept on disk; past it, acknowledged evidence is pruned oldest first."
    )
    keep_days: float | None = Field(
        None, gt=0, description="Prune evidence files this many days after the hub acknowledged their event."
    )
    min_free_mb: float = Field(
        500, ge=0, description="Free disk under this (after pruning) raises the disk alarm; images become thumbnails."
    )
    thumbnail_px: int = Field(320, ge=32, le=2048, description="Longest side of evidence images while the alarm is on.")
    interval_s: float = Field(30, gt=0, description="Seconds between retention passes.")


class SessionsConfig(Strict):
    idle_timeout_s: float = Field(120, gt=0, description="A session with no new reading or scan for this long closes.")
    max_open_s: float = Field(1800, gt=0, description="A session open this long closes even while devices still read.")
    lookback_s: float = Field(
        15, ge=0, description="Readings (weight, seals, radiation) this long before a session opens join it."
    )
    reopen_guard_s: float = Field(
        30, ge=0, description="After a decision, reads of the same vehicle this long after it open no new session."
    )


class WatchlistFileConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Watchlist name shown in reasons.")
    path: ConfigPath = Field(description="CSV (kind,value,birth_date,country,reason) or JSON file of entries.")


class RulesConfig(Strict):
    threshold: int = Field(50, ge=1, le=100, description="Risk score at which clearing needs a reason and approval.")
    medium_at: int | None = Field(None, ge=0, le=100, description="Score shown as medium risk (default threshold/2).")
    table: ConfigPath | None = Field(None, description="YAML rules table replacing the shipped one.")
    inline: list[dict[str, Any]] | None = Field(None, description="Rules table written here instead of a file.")
    weight_tolerance_pct: float = Field(10, gt=0, le=1000, description="Measured vs declared weight tolerance, %.")
    shuttle_window_h: float = Field(24, gt=0, le=2160, description="Window of the repeat-crossing (shuttle) rules.")
    watchlists: list[WatchlistFileConfig] = Field(default_factory=list, description="Watchlist files loaded at start.")

    @model_validator(mode="after")
    def _table_is_valid(self) -> RulesConfig:
        from edge.lanes.rules import load_table, parse_table  # lazily: edge.lanes imports this module

        if self.table is not None and self.inline is not None:
            raise ValueError("give either table (a file) or inline rules, not both")
        if self.inline is not None:
            parse_table(self.inline, "inline")
        elif self.table is not None:
            load_table(self.table)
        return self


class LoggingConfig(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")


class EdgeConfig(Strict):
    """The whole edge configuration file."""

    site: SiteConfig = Field(description="The crossing point.")
    edge: EdgeBoxConfig = Field(description="This edge box.")
    lanes: list[LaneConfig] = Field(min_length=1, description="Lanes served by this box.")
    detector: DetectorConfig | None = Field(None, description="Detection on scans; absent: scans are stored only.")
    store: StoreConfig = Field(description="The evidentiary store.")
    sync: SyncConfig = Field(description="MQTT sync to the hub.")
    logging: LoggingConfig = Field(description="Logging.")
    terminal: TerminalConfig | None = Field(None, description="The inspector web terminal; absent: not served.")
    metrics: MetricsConfig | None = Field(None, description="Prometheus /metrics and /healthz; absent: not served.")
    retention: RetentionConfig = Field(description="Evidence retention, disk quota and the disk alarm.")
    sessions: SessionsConfig = Field(description="Lane sessions: when they open and close.")
    rules: RulesConfig = Field(description="Risk rules, threshold and watchlists.")

    @model_validator(mode="before")
    @classmethod
    def _sections_default_to_empty(cls, data: Any) -> Any:
        # An absent section is validated like an empty one, so its defaults see the context.
        if isinstance(data, dict):
            data = {"store": {}, "sync": {}, "logging": {}, "retention": {}, "sessions": {}, "rules": {}} | data
        return data

    @model_validator(mode="after")
    def _unique_ids(self) -> EdgeConfig:
        seen: set[str] = set()
        for lane in self.lanes:
            if lane.id in seen:
                raise ValueError(f"lane id {lane.id!r} is used twice")
            seen.add(lane.id)
        devices: set[str] = set()
        for lane in self.lanes:
            ids = [c.id for c in lane.cameras] + [d.id for d in lane.scanners]
            for device_id in ids:
                if device_id in devices:
                    raise ValueError(f"device id {device_id!r} is used twice")
                devices.add(device_id)
        return self


# ---------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML keeps the last one silently)."""


def _check_duplicates(node: yaml.Node, path: str) -> None:
    if isinstance(node, yaml.MappingNode):
        keys: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in keys:
                raise ConfigError(f"{path}:{key_node.start_mark.line + 1}: key {key!r} appears twice")
            keys.add(key)
            _check_duplicates(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, path)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_config(path: str | Path) -> EdgeConfig:
    """Read, parse and validate ``path``; raise ``ConfigError`` naming file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read config: {reason}") from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> EdgeConfig:
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: YAML syntax error: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from exc
    if root is not None:
        _check_duplicates(root, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping with site, edge and lanes")
    try:
        return EdgeConfig.model_validate(data, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line_no = line_of(root, loc)
        where = f"{path}:{line_no}" if line_no is not None else str(path)
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {_dotted(loc)}: {message}{more}") from None
