"""``checkpoint hub`` (run hub workers) and ``checkpoint downlink publish`` (signed watchlists and config).

The hub is configured by a YAML file (``sync/hubconfig.py``, ``deploy/hub.example.yaml``);
the flags of the earlier command (``--broker``, ``--db``, ``--prefix``, ``--workers``)
still work, alone or on top of a config file.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from edge.errors import ConfigError, EdgeError

log = logging.getLogger("checkpoint")


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=str))


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)


def _load(config_file: Path | None, overrides: dict[str, Any]) -> tuple[Any, Path | None]:
    """The hub config from the file (or defaults), with the flags given on top; ``ConfigError`` when invalid."""
    from pydantic import ValidationError

    from sync.hubconfig import HubConfig, HubConfigError, load_hub_config

    base: Path | None = None
    if config_file is not None:
        try:
            cfg = load_hub_config(config_file)
        except HubConfigError as exc:
            raise ConfigError(str(exc)) from None
        base = config_file.parent.resolve()
        data = cfg.model_dump(mode="json", exclude_none=True)
    else:
        data = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return HubConfig.model_validate(data, context={"base_dir": base or Path.cwd()}), base
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"hub config: {where}: {first['msg'].removeprefix('Value error, ')}") from None


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Hub configuration YAML (see deploy/hub.example.yaml).")
@click.option("--broker", default=None, help="Broker URL, mqtt://host:port (overrides broker.url).")
@click.option("--db", "db_path", default=None, help="A SQLite file, or a postgresql:// URL (overrides storage.url).")
@click.option("--prefix", default=None, help="Topic prefix the edges use (overrides topic_prefix).")
@click.option("--workers", type=click.IntRange(1, 32), default=None,
              help="Workers in this process (overrides workers).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--dashboard", "dashboard_listen", default=None, metavar="HOST:PORT",
              help="Also serve the ops dashboard here (as `checkpoint dashboard` does).")
@click.option("--dashboard-users", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="CHECKPOINT_DASHBOARD_USERS", help="Operators file for --dashboard.")
def hub(config_file: Path | None, broker: str | None, db_path: str | None, prefix: str | None, workers: int | None,
        duration: float | None, dashboard_listen: str | None, dashboard_users: Path | None) -> None:
    """Run hub workers: store every edge's events once, in order, and acknowledge after commit.

    Asks an edge to resend a gap that outlives gap_timeout_s, records downlink acks,
    and forwards the configured event types to a partner hub.

    \b
    Examples:
      checkpoint hub --config /etc/checkpoint/hub.yaml
      checkpoint hub --broker mqtt://127.0.0.1:1883 --db /var/lib/checkpoint-hub/hub.db --workers 2
    """
    from sync.hubconfig import redact_url
    from sync.hubservice import HubService

    if config_file is None and db_path is None:
        raise click.UsageError("give --config FILE or --db FILE|URL")
    if db_path is not None and "://" not in db_path:
        db_path = str(Path(db_path).resolve())  # a flag is relative to where it is typed
    cfg, base = _load(config_file, {"broker.url": broker, "storage.url": db_path, "topic_prefix": prefix,
                                     "workers": workers})
    _setup_logging(cfg.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service = HubService(cfg, base).start()
    except Exception as exc:  # the database or the forward outbox could not be opened
        raise EdgeError(f"hub: cannot start: {exc}") from exc
    where = redact_url(service.target)
    dashboard = None
    if dashboard_listen is not None:
        from edge.cli_dashboard import serve_in_process

        try:
            dashboard = serve_in_process(service.target, dashboard_listen, dashboard_users)
        except (click.UsageError, EdgeError):
            service.stop()
            raise
        click.echo(f"hub: dashboard at {dashboard.url}")
    if service.wait_ready(30):
        click.echo(f"hub: {cfg.workers} worker(s) ready on {cfg.broker.url}, storing into {where}")
        sys.stdout.flush()
    else:
        click.echo(f"hub: broker {cfg.broker.url} not reachable yet; retrying", err=True)
    started = time.monotonic()
    while not stop.wait(5.0 if duration is None else min(5.0, max(0.05, duration - (time.monotonic() - started)))):
        s = service.stats()
        click.echo(f"hub: stored {s['stored']}, duplicates {s['duplicates']}, quarantined {s['quarantined']}, "
                   f"resend requests {s['resend_requests']}"
                   + (f", forward backlog {s['forward']['backlog']}" if "forward" in s else ""))
        if duration is not None and time.monotonic() - started >= duration:
            break
    if dashboard is not None:
        dashboard.stop()
    service.stop()
    _echo_json(service.stats())


# ---------------------------------------------------------------- downlink


@click.group()
def downlink() -> None:
    """Signed downlink: watchlists and config pushed from the hub to the edges."""


@downlink.command("publish")
@click.option("--kind", type=click.Choice(["watchlist", "config"]), required=True)
@click.option("--name", required=True, help="Document name, e.g. plates (a-z, 0-9, _ -).")
@click.option("--file", "body_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help='JSON: a watchlist {"entries": [{"type","value","reason","source"}...]} (or the bare list); '
                   "a config object.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Hub config: broker, prefix, signing key and the hub database (versions, history).")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Ed25519 private key (overrides downlink.signing_key).")
@click.option("--broker", default=None, help="Broker URL (overrides broker.url).")
@click.option("--prefix", default=None, help="Topic prefix (overrides topic_prefix).")
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="Version (default: one more than the last published, from the hub database).")
@click.option("--target", "targets", multiple=True, help="Edge id to send to (repeat); default: every edge.")
@click.option("--expires-in", "expires_in", type=click.FloatRange(1), default=None,
              help="Seconds within which an edge may still apply it.")
def downlink_publish(kind: str, name: str, body_file: Path, config_file: Path | None, key_file: Path | None,
                     broker: str | None, prefix: str | None, version: int | None, targets: tuple[str, ...],
                     expires_in: float | None) -> None:
    """Sign a watchlist or config document and publish it, retained, to the edges.

    Prints the topics, version and key id as one JSON line.

    \b
    Examples:
      checkpoint downlink publish --config hub.yaml --kind watchlist --name plates --file plates.json
      checkpoint downlink publish --kind config --name lanes --file lanes.json --key hub.key \\
          --broker mqtt://127.0.0.1:1883 --version 3 --target edge-1
    """
    from sync import downlink as dl
    from sync.downlink_publish import DownlinkPublishError, make_document, publish, read_body
    from sync.hub import unique_client_id
    from sync.hubstore import open_hub_store

    cfg, base = _load(config_file, {"broker.url": broker, "topic_prefix": prefix})
    key_path = key_file or cfg.downlink.signing_key
    if key_path is None:
        raise click.UsageError("give --key FILE or a config with downlink.signing_key")
    try:
        key = dl.load_private_key(key_path)
    except dl.KeyFileError as exc:
        raise EdgeError(str(exc)) from exc
    hub_store = open_hub_store(cfg.storage.target(base)) if config_file is not None else None
    try:
        if version is None:
            if hub_store is None:
                raise click.UsageError("give --version N, or --config so the next version is read from the hub")
            version = (hub_store.last_published_version(kind, name) or 0) + 1
        try:
            document = make_document(kind=kind, name=name, version=version, body=read_body(kind, body_file),
                                     key=key, targets=list(targets) or ["*"], expires_in_s=expires_in)
            published = publish(cfg.broker.settings(), cfg.topic_prefix, document,
                                client_id=unique_client_id("downlink"))
        except DownlinkPublishError as exc:
            raise EdgeError(str(exc)) from exc
        if hub_store is not None:
            hub_store.record_published(kind, name, version, list(targets) or ["*"], document)
    finally:
        if hub_store is not None:
            hub_store.close()
    _echo_json({"kind": kind, "name": name, "version": version, "topics": published,
                "key_id": dl.public_key_id(key.public_key())})
