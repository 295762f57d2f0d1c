"""``checkpoint lanes``: the risk rules table in effect and watchlist file checks; ``checkpoint bench lanes``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from edge.lanes.errors import RulesError


@click.group()
def lanes() -> None:
    """Lane sessions: risk rules and watchlists.

    \b
    Examples:
      checkpoint lanes rules --config /etc/checkpoint/edge.yaml
      checkpoint lanes watchlist /etc/checkpoint/watchlists/national.csv
    """


@lanes.command("rules")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Edge config whose rules section is used (default: the shipped table).")
def rules_cmd(config_file: Path | None) -> None:
    """Print the risk rules table in effect, as YAML (the format of rules.table)."""
    from edge.config import RulesConfig, load_config
    from edge.errors import ConfigError
    from edge.lanes.rules import DEFAULT_RULES, load_table, parse_table

    try:
        cfg = load_config(config_file).rules if config_file is not None else RulesConfig()
        if cfg.inline is not None:
            table = parse_table(cfg.inline, "rules.inline")
        elif cfg.table is not None:
            table = load_table(cfg.table)
        else:
            table = parse_table(DEFAULT_RULES, "default rules")
    except (ConfigError, RulesError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    rows = [{"id": r.id, "kind": r.kind, "points": r.points} | r.model_dump(exclude_defaults=True) for r in table]
    click.echo(f"# threshold {cfg.threshold}, weight tolerance {cfg.weight_tolerance_pct:g} %, "
               f"shuttle window {cfg.shuttle_window_h:g} h")
    click.echo(yaml.safe_dump({"rules": rows}, sort_keys=False, allow_unicode=True), nl=False)


@lanes.command("watchlist")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def watchlist_cmd(files: tuple[Path, ...]) -> None:
    """Check watchlist files (CSV or JSON); one JSON line per file, exit 2 at the first bad one."""
    from edge.lanes.watchlist import WatchlistRegistry

    registry = WatchlistRegistry()
    for path in files:
        try:
            info = registry.load_file(path)
        except RulesError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
        click.echo(json.dumps(info.as_dict() | {"file": str(path)}))


@click.command("lanes")
@click.option("--vehicles", type=int, default=50, show_default=True, help="Plate reads, each a new vehicle.")
@click.option("--gap", "gap_s", type=float, default=0.2, show_default=True, help="Seconds between vehicles.")
def bench_lanes_cmd(vehicles: int, gap_s: float) -> None:
    """Time from a plate read on the wire to the new session's notification (what the terminal's SSE hears).

    Example: checkpoint bench lanes --vehicles 100
    """
    from edge.lanes.bench import bench_lanes

    click.echo(json.dumps(bench_lanes(vehicles, gap_s)))
