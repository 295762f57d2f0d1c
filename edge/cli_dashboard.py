"""``checkpoint dashboard`` (the hub's ops dashboard) and ``checkpoint dashboard-user`` (its operators)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge.errors import EdgeError

if TYPE_CHECKING:
    from sync.dashboard.server import DashboardServer


def _check_hub_db(hub_db: str) -> None:
    """The hub database must exist; its schema is brought up to date (edge_status, indexes) as the hub would."""
    from sync.hubstore import open_hub_store

    if not hub_db.startswith(("postgresql://", "postgres://")) and not Path(hub_db).is_file():
        raise EdgeError(f"{hub_db}: no hub database here (start `checkpoint hub --db {hub_db}` first, or fix the path)")
    try:
        open_hub_store(hub_db).close()
    except Exception as exc:  # psycopg / sqlite3 errors: one line, no URL (it may hold a password)
        first = (str(exc).splitlines() or [""])[0][:200]
        raise EdgeError(f"cannot open the hub database: {type(exc).__name__}: {first}") from exc


@click.command()
@click.option("--hub-db", required=True, help="Hub database: a SQLite file or a postgresql:// URL.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to serve on.")
@click.option("--users", "users_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              envvar="CHECKPOINT_DASHBOARD_USERS", help="Operators file (see `checkpoint dashboard-user`).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Private key of --tls-cert.")
@click.option("--metrics-token-env", default=None, metavar="VAR",
              help="Require `Authorization: Bearer $VAR` on /metrics (the token is read from this variable).")
def dashboard(hub_db: str, listen: str, users_file: Path, tls_cert: str | None, tls_key: str | None,
              metrics_token_env: str | None) -> None:
    """Serve the ops dashboard: edges online/offline, live alerts, search, session detail, JSON API, /metrics.

    \b
    Examples:
      checkpoint dashboard-user --users /etc/checkpoint-hub/users ops1 --role ops
      checkpoint dashboard --hub-db /var/lib/checkpoint-hub/hub.db --listen 0.0.0.0:8443 \\
          --users /etc/checkpoint-hub/users --tls-cert hub.crt --tls-key hub.key
    """
    from sync.dashboard import create_app
    from sync.dashboard.auth import UsersError
    from sync.dashboard.server import DashboardServer

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    token = None
    if metrics_token_env:
        token = os.environ.get(metrics_token_env)
        if not token:
            raise click.UsageError(f"--metrics-token-env {metrics_token_env}: that variable is empty or unset")
    _check_hub_db(hub_db)
    try:
        app = create_app(hub_db, users_file, secure_cookies=tls_cert is not None, metrics_token=token)
        server = DashboardServer(app, listen, ssl_certfile=tls_cert, ssl_keyfile=tls_key)
    except (UsersError, ValueError, OSError) as exc:
        raise EdgeError(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    click.echo(f"dashboard: {server.url} (hub database {'PostgreSQL' if '://' in hub_db else hub_db})")
    sys.stdout.flush()
    while not stop.wait(1.0):
        if not server.running:
            raise EdgeError("dashboard: the web server stopped (see the log above)")
    server.stop()


@click.command("dashboard-user")
@click.argument("name")
@click.option("--users", "users_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              envvar="CHECKPOINT_DASHBOARD_USERS", help="Operators file (created 0600 if missing).")
@click.option("--role", type=click.Choice(["ops", "admin"]), default="ops", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def dashboard_user(name: str, users_file: Path, role: str, password_stdin: bool) -> None:
    """Add a dashboard operator, or change one's role and password (Argon2id hash in the users file).

    \b
    Example:
      checkpoint dashboard-user --users hub-users.txt anna --role admin
    """
    from sync.dashboard.auth import UsersError, set_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        set_user(users_file, name, role, password)
    except UsersError as exc:
        raise EdgeError(str(exc)) from None
    click.echo(f"dashboard-user: {name} ({role}) saved in {users_file}")


def start_demo_dashboard(hub_dir: Path, hub_db: Path,
                         listen: str = "127.0.0.1:8090") -> tuple[DashboardServer, str, str]:
    """The dashboard of ``checkpoint demo``: a fresh ops account (new password every run) and a running server.

    Returns ``(server, user, password)``; ``server.url`` is where to look and ``server.stop()`` ends it.
    """
    import secrets

    from sync.dashboard import create_app
    from sync.dashboard.auth import set_user
    from sync.dashboard.server import DashboardServer

    users, user, password = hub_dir / "dashboard-users", "ops", secrets.token_urlsafe(9)
    set_user(users, user, "ops", password)
    app = create_app(hub_db, users, title="Checkpoint hub (demo)")
    try:
        server = DashboardServer(app, listen)
    except OSError:  # the usual port is taken: any free one
        server = DashboardServer(app, listen.rsplit(":", 1)[0] + ":0")
    return server.start(), user, password


def serve_in_process(hub_db: str, listen: str, users_file: Path | None) -> DashboardServer:
    """The dashboard inside another command (``checkpoint hub --dashboard HOST:PORT``), in a background thread."""
    from sync.dashboard import create_app
    from sync.dashboard.auth import UsersError
    from sync.dashboard.server import DashboardServer

    if users_file is None:
        raise click.UsageError("--dashboard needs --dashboard-users FILE (see `checkpoint dashboard-user`)")
    try:
        return DashboardServer(create_app(hub_db, users_file), listen).start()
    except (UsersError, ValueError, OSError) as exc:
        raise EdgeError(f"dashboard: {exc}") from None
