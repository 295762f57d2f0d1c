"""``checkpoint doctor``: one table of every check on this edge box, each with its remedy."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

DEFAULT_CONFIG = Path("/etc/checkpoint/edge.yaml")
DEFAULT_SECRETS = Path("/etc/checkpoint/secrets")


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG,
              show_default=True, help="Edge configuration YAML.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row (JSON lines) instead of the table.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.5, 300), default=10.0, show_default=True,
              help="Seconds each device may take: first frame, first valid reading, broker connect, hub ack.")
@click.option("--credentials", "credentials_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the secrets the config names as {credential: NAME} (default: $CREDENTIALS_DIRECTORY, "
                   "else /etc/checkpoint/secrets, the files the systemd unit loads).")
def doctor(config_file: Path, as_json: bool, timeout_s: float, credentials_dir: Path | None) -> None:
    """Check everything this edge box needs, one row each: OK, WARN or FAIL with the fix.

    Config; clock; disk against the quota; database integrity, the hash chain
    and the outbox backlog; the model (load, warm-up, latency); every camera
    (a frame, its fps); every serial device (bytes within the timeout, and
    whether they parse; polled devices are polled); the broker (with TLS and
    this edge's identity) and a hub round trip.

    Run it with the edge service STOPPED (`sudo systemctl stop checkpoint-edge`):
    a serial port can be read by one program at a time. A port held by another
    process is reported and left alone, never read. Doctor writes nothing on
    this box; the hub round trip re-sends one stored event (one the hub already
    holds when there is one; the hub stores nothing twice).

    Exit code: 0 all OK, 1 some WARN, 2 some FAIL.

    \b
    Examples:
      sudo systemctl stop checkpoint-edge
      sudo checkpoint doctor --config /etc/checkpoint/edge.yaml
      checkpoint doctor --config edge.yaml --json --timeout 5
    """
    from edge.doctor import DoctorOptions, format_table, run_doctor, worst

    logging.getLogger().setLevel(logging.CRITICAL)  # the table says it all; driver warnings would interleave
    if "CREDENTIALS_DIRECTORY" not in os.environ:
        folder = credentials_dir or (DEFAULT_SECRETS if DEFAULT_SECRETS.is_dir() else None)
        if folder is not None:
            os.environ["CREDENTIALS_DIRECTORY"] = str(folder)
    elif credentials_dir is not None:
        os.environ["CREDENTIALS_DIRECTORY"] = str(credentials_dir)
    rows = run_doctor(config_file, DoctorOptions(timeout_s=timeout_s))
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_dict(), sort_keys=True, default=str))
    else:
        click.echo(format_table(rows))
    sys.stdout.flush()
    sys.exit(worst(rows))
