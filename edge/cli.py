"""``checkpoint``: the one command-line entry point.

Anticipated errors are one line on stderr and a non-zero exit (2 for bad input
such as an invalid config); machine output is JSON lines.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

from edge import __version__
from edge.errors import EdgeError
from models.errors import ModelError

log = logging.getLogger("checkpoint")


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="checkpoint")
def cli() -> None:
    """Checkpoint Edge: the edge runtime of a border crossing point.

    \b
    Examples:
      checkpoint demo --duration 30
      checkpoint run --config /etc/checkpoint/edge.yaml
      checkpoint config check deploy/edge.example.yaml
      checkpoint verify --db data/edge.db
    """


# ---------------------------------------------------------------- config


@cli.group()
def config() -> None:
    """Inspect and validate configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the validated config as JSON (secrets masked).")
def config_check(file: Path, as_json: bool) -> None:
    """Validate FILE; exit 2 with FILE:LINE: KEY: problem when it is invalid.

    \b
    Example:
      checkpoint config check deploy/edge.example.yaml
    """
    from edge.config import load_config

    cfg = load_config(file)
    if as_json:
        from drivers.camera.registry import redact_url

        dump = cfg.model_dump(mode="json")  # SecretStr fields dump masked
        for lane in dump["lanes"]:
            for camera in lane["cameras"]:
                camera["url"] = redact_url(camera["url"])
        _echo_json(dump)
    else:
        cams = sum(len(lane.cameras) for lane in cfg.lanes)
        scanners = sum(len(lane.scanners) for lane in cfg.lanes)
        click.echo(
            f"{file}: OK (site {cfg.site.id}, edge {cfg.edge.id}, {len(cfg.lanes)} lane(s), {cams} camera(s), "
            f"{scanners} scanner(s))"
        )


# ---------------------------------------------------------------- run / demo


@cli.command()
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Edge configuration YAML.",
)
@click.option(
    "--duration", type=float, default=None, help="Stop after this many seconds (default: run until signalled)."
)
@click.option(
    "--status-every",
    type=float,
    default=None,
    help="Seconds between counter lines (default: live line on a terminal, every 5 s otherwise).",
)
@click.option("--json", "as_json", is_flag=True, help="Print counters as JSON lines.")
def run(config_file: Path, duration: float | None, status_every: float | None, as_json: bool) -> None:
    """Run the edge: cameras -> analysis -> evidentiary store.

    Stops cleanly on SIGINT or SIGTERM, with everything flushed, within 5 s.

    \b
    Example:
      checkpoint run --config /etc/checkpoint/edge.yaml
    """
    from edge.config import load_config
    from edge.console import run_until_stopped

    cfg = load_config(config_file)
    _setup_logging(cfg.logging.level)
    run_until_stopped(cfg, duration=duration, status_every=status_every, as_json=as_json)


@cli.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the demo's config, database and evidence (default: a new temporary folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print counters as JSON lines.")
def demo(duration: float | None, directory: Path | None, as_json: bool) -> None:
    """Run a whole simulated checkpoint: three lanes of simulated X-ray scanners.

    Writes a config that uses only simulated devices into DIR, runs it, then
    verifies the evidentiary chain it left.

    \b
    Example:
      checkpoint demo --duration 30 --dir /tmp/demo
    """
    from edge.demo import run_demo

    _setup_logging("INFO")
    run_demo(directory, duration=duration, as_json=as_json)


# ---------------------------------------------------------------- verify / events


@cli.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Edge database.")
@click.option(
    "--evidence",
    "evidence_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Evidence folder (default: 'evidence' beside the database).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def verify(db_path: Path, evidence_dir: Path | None, as_json: bool) -> None:
    """Walk the hash chain, the rows and the evidence files; exit 1 at the first break.

    \b
    Example:
      checkpoint verify --db data/edge.db
    """
    from edge.store.verify import verify_store

    report = verify_store(db_path, evidence_dir)
    if as_json:
        _echo_json(report.as_dict())
    elif report.ok:
        click.echo(
            f"OK: {report.events} events chained to seq {report.head_seq} (head {report.head_hash[:16]}), "
            f"{report.rows} rows, {report.evidence_files} evidence files verified"
        )
    else:
        click.echo(f"BROKEN: {report.problems[0]}", err=True)
        for problem in report.problems[1:]:
            click.echo(f"  also: {problem}", err=True)
    sys.exit(0 if report.ok else 1)


@cli.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Edge database.")
@click.option("--after", type=int, default=0, show_default=True, help="Only events with seq greater than this.")
@click.option("--limit", type=int, default=None, help="At most this many events.")
def events(db_path: Path, after: int, limit: int | None) -> None:
    """Print stored events as JSON lines (the envelopes the hub receives).

    \b
    Example:
      checkpoint events --db data/edge.db --after 100 --limit 10
    """
    from edge.store.chain import iter_envelopes
    from edge.store.db import connect

    db = connect(db_path, readonly=True)
    try:
        for envelope in iter_envelopes(db, after=after, limit=limit):
            _echo_json(envelope)
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise EdgeError(f"{db_path}: cannot read events: {exc}") from exc
    finally:
        db.conn.close()


# ---------------------------------------------------------------- serial


@cli.command()
@click.argument("protocol")
@click.argument("source", default="-", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@click.option(
    "--framing", default=None, help='Framing override as JSON, e.g. \'{"kind": "terminator", "terminator": "cr"}\'.'
)
@click.option("--device-id", default="decode", show_default=True, help="Device id written into each reading.")
@click.option("--strict", is_flag=True, help="Exit 1 when any reading is invalid.")
def decode(protocol: str, source: Path, framing: str | None, device_id: str, strict: bool) -> None:
    """Decode raw device bytes from SOURCE (a capture file, or - for stdin) into JSON lines.

    Uses the runtime's own framing and parser, so what you see is what the edge stores.
    Protocols: mrz, barcode, scale, plate, radiation, rfid, raw.

    \b
    Example:
      checkpoint decode mrz capture.bin
      socat -u /dev/ttyUSB0,raw - | checkpoint decode scale -
    """
    import time

    from drivers.serial.decoder import Decoder

    try:
        spec = json.loads(framing) if framing else None
        decoder = Decoder(device_id, protocol, spec)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc)) from None
    stream = sys.stdin.buffer if str(source) == "-" else None
    try:
        fh = stream or open(source, "rb")
    except OSError as exc:
        raise EdgeError(f"{source}: cannot read: {exc.strerror}") from exc
    invalid = total = 0
    try:
        while True:
            data = fh.read1(65536) if hasattr(fh, "read1") else fh.read(65536)
            readings = decoder.feed(data, time.time()) if data else decoder.close(time.time())
            for reading in readings:
                total += 1
                invalid += 0 if reading.valid else 1
                _echo_json(reading.as_dict())
            if not data:
                break
    finally:
        if stream is None:
            fh.close()
    click.echo(f"{total} reading(s), {invalid} invalid", err=True)
    if strict and invalid:
        sys.exit(1)


@cli.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Edge config: show which configured device each port serves.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
def devices(config_file: Path | None, as_json: bool) -> None:
    """List serial ports with their stable /dev/serial/by-id paths and the device each serves.

    \b
    Example:
      checkpoint devices --config /etc/checkpoint/edge.yaml
    """
    from edge.config import load_config
    from edge.devices import list_devices

    rows = list_devices(load_config(config_file) if config_file else None)
    for row in rows:
        if as_json:
            _echo_json(row)
        else:
            present = {True: "", False: "  MISSING", None: ""}[row["present"]]
            click.echo(
                f"{row['device']}  {row['stable_path'] or '-'}  {row['description'] or ''}"
                f"  serves: {row['serves'] or '-'}{present}"
            )
            if row.get("hint"):
                click.echo(f"    hint: {row['hint']}")
    if not rows:
        click.echo("no serial ports found", err=True)


# ---------------------------------------------------------------- bench


@cli.group()
def bench() -> None:
    """Benchmarks: figures and ratios against a baseline measured in the same run."""


@bench.command("store")
@click.option("--events", type=int, default=20000, show_default=True, help="Events written through the store.")
@click.option(
    "--baseline-events", type=int, default=1000, show_default=True, help="Events for the one-commit-per-event baseline."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put the scratch databases (default: the system temp folder).",
)
def bench_store_cmd(events: int, baseline_events: int, directory: Path | None) -> None:
    """Store throughput (batched writer + chain) vs one transaction per event; one JSON line.

    \b
    Example:
      checkpoint bench store --events 20000
    """
    from edge.bench import bench_store

    _echo_json(bench_store(events, baseline_events, directory))


@bench.command("sync")
@click.option("--events", type=int, default=20000, show_default=True, help="Backlog drained from the edge.")
@click.option("--postgres", "pg_url", default=None, help="Also drain into PostgreSQL at this URL.")
@click.option("--window", type=int, default=1000, show_default=True, help="Publisher window (events in flight).")
def bench_sync_cmd(events: int, pg_url: str | None, window: int) -> None:
    """Drain a backlog edge -> local Mosquitto -> hub, next to raw paho QoS 1 and raw batched inserts.

    Prints one JSON line per hub database, with the ratio to the slower baseline.

    \b
    Example:
      checkpoint bench sync --events 20000 --postgres postgresql://postgres@127.0.0.1/test
    """
    from edge.bench import bench_sync

    logging.getLogger().setLevel(logging.WARNING)
    for row in bench_sync(events, pg_url, window):
        _echo_json(row)


# ---------------------------------------------------------------- sim


@cli.group()
def sim() -> None:
    """Simulated devices."""


@sim.command("xray")
@click.option("--seed", type=int, default=0, show_default=True, help="Scene seed (same seed, same scan).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file to write.")
@click.option("--width", type=int, default=1024, show_default=True)
@click.option("--height", type=int, default=512, show_default=True)
@click.option("--vehicle", type=click.Choice(["truck", "van", "container", "car"]), default=None)
@click.option("--boxes/--no-boxes", default=False, help="Draw the ground-truth boxes.")
def sim_xray(seed: int, out: Path, width: int, height: int, vehicle: str | None, boxes: bool) -> None:
    """Render one synthetic X-ray scan to PNG and print its ground truth as JSON lines.

    \b
    Example:
      checkpoint sim xray --seed 7 --out scan.png --boxes
    """
    import cv2

    from drivers.sim.xray import render_scene

    scene = render_scene(seed, width=width, height=height, vehicle=vehicle)
    image = cv2.cvtColor(scene.image, cv2.COLOR_GRAY2BGR)
    for t in scene.truth:
        _echo_json({"class_name": t.class_name, "box": [t.x1, t.y1, t.x2, t.y2]})
        if boxes:
            cv2.rectangle(image, (int(t.x1), int(t.y1)), (int(t.x2), int(t.y2)), (0, 0, 255), 2)
            cv2.putText(
                image, t.class_name, (int(t.x1), max(12, int(t.y1) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1
            )
    if not cv2.imwrite(str(out), image):
        raise EdgeError(f"{out}: cannot write image")


from edge.cli_users import users  # noqa: E402

cli.add_command(users)
from edge.cli_terminal import bench_terminal  # noqa: E402

bench.add_command(bench_terminal)
from edge.cli_doctor import doctor  # noqa: E402

cli.add_command(doctor)
from edge.cli_store import store  # noqa: E402

cli.add_command(store)
from edge.cli_model import bench_detect_cmd, model  # noqa: E402

cli.add_command(model)
bench.add_command(bench_detect_cmd)
from edge.cli_hub import downlink, hub  # noqa: E402

cli.add_command(hub)
cli.add_command(downlink)
from edge.cli_keys import keys  # noqa: E402

cli.add_command(keys)
from edge.cli_dashboard import dashboard, dashboard_user  # noqa: E402

cli.add_command(dashboard)
cli.add_command(dashboard_user)

from edge.cli_lanes import bench_lanes_cmd, lanes  # noqa: E402

cli.add_command(lanes)
bench.add_command(bench_lanes_cmd)
from edge.cli_replay import replay_cmd  # noqa: E402

cli.add_command(replay_cmd)


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="checkpoint")
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except EdgeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ModelError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
