"""``checkpoint bench terminal``: how fast a new session reaches the inspector's lane page."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("terminal")
@click.option("--vehicles", type=click.IntRange(1, 500), default=20, show_default=True,
              help="Vehicles (plate reads) to time.")
@click.option("--gap", "gap_s", type=float, default=0.5, show_default=True, help="Seconds between vehicles.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work folder (default: a new temporary one).")
def bench_terminal(vehicles: int, gap_s: float, directory: Path | None) -> None:
    """Time from a plate read (bytes on a pty) to the new session on the lane page.

    Prints one JSON line: read -> live-stream announcement, and read -> the lane panel
    showing the new plate (what the page swaps in), p50/p95/max in ms.

    \b
    Example:
      checkpoint bench terminal --vehicles 30
    """
    from edge.web.bench import run_terminal_bench

    click.echo(json.dumps(run_terminal_bench(vehicles, gap_s, directory), sort_keys=True))
