"""``checkpoint users``: terminal accounts (add, list, disable, enable, passwd).

Passwords are read from a hidden prompt or from standard input (``--password-stdin``),
never from an argument that would show in ``ps`` or the shell history. Each change is
queued for the evidentiary record and chained as an ``audit`` event by the runtime.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import click

from edge.web.accounts import ROLES, AccountStore


def _open(config_file: Path | None, db: Path | None) -> AccountStore:
    if (config_file is None) == (db is None):
        raise click.UsageError("give exactly one of --config FILE or --db FILE")
    if config_file is not None:
        from edge.config import load_config

        cfg = load_config(config_file)
        return AccountStore(cfg.store.path, edge_id=cfg.edge.id).open()
    assert db is not None
    return AccountStore(db).open()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


_config = click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                       help="Edge configuration YAML (its store path and edge id).")
_db = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                   help="Edge database file (instead of --config; must exist).")
_stdin = click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")


@click.group()
def users() -> None:
    """Terminal accounts: inspector, supervisor, technician, admin.

    \b
    Examples:
      checkpoint users add anna --role inspector --config edge.yaml
      echo "$PW" | checkpoint users add boris --role supervisor --password-stdin --db data/edge.db
      checkpoint users list --json --db data/edge.db
      checkpoint users disable anna --db data/edge.db
    """


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The user's role.")
@_stdin
@_config
@_db
def add(username: str, role: str, password_stdin: bool, config_file: Path | None, db: Path | None) -> None:
    """Create a user (the password is asked for, hidden, twice)."""
    AccountStore.check_username(username)
    store = _open(config_file, db)
    try:
        store.add(username, role, _password(password_stdin), actor=_actor())
    finally:
        store.close()
    click.echo(f"user {username} added with role {role}")


@users.command("passwd")
@click.argument("username")
@_stdin
@_config
@_db
def passwd(username: str, password_stdin: bool, config_file: Path | None, db: Path | None) -> None:
    """Set a user's password (ends the user's open terminal sessions)."""
    store = _open(config_file, db)
    try:
        store.set_password(username, _password(password_stdin), actor=_actor())
    finally:
        store.close()
    click.echo(f"password of {username} changed")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@_config
@_db
def list_users(as_json: bool, config_file: Path | None, db: Path | None) -> None:
    """List the users, their roles and whether they are disabled."""
    store = _open(config_file, db)
    try:
        rows = store.users()
    finally:
        store.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            state = "disabled" if row["disabled"] else "active"
            click.echo(f"{row['username']:<24} {row['role']:<11} {state:<9} created {row['created_at']}")


def _set_disabled(username: str, disabled: bool, config_file: Path | None, db: Path | None) -> None:
    store = _open(config_file, db)
    try:
        store.set_disabled(username, disabled, actor=_actor())
    finally:
        store.close()
    click.echo(f"user {username} {'disabled' if disabled else 'enabled'}")


@users.command("disable")
@click.argument("username")
@_config
@_db
def disable(username: str, config_file: Path | None, db: Path | None) -> None:
    """Disable a user: no more logins, open sessions end at once."""
    _set_disabled(username, True, config_file, db)


@users.command("enable")
@click.argument("username")
@_config
@_db
def enable(username: str, config_file: Path | None, db: Path | None) -> None:
    """Enable a disabled user again."""
    _set_disabled(username, False, config_file, db)
