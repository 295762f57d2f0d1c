"""``checkpoint store``: backup, migrate and schema version of the edge database (used by deploy/install.sh)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import click

from edge.errors import StoreError


@click.group()
def store() -> None:
    """The edge database: consistent backups and schema migrations (for upgrades)."""


@store.command("backup")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Edge database.")
@click.option("--to", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the backup (created if missing).")
def backup_cmd(db_path: Path, folder: Path) -> None:
    """Copy DB into FOLDER as a consistent snapshot (SQLite's backup API; safe while the edge writes).

    Prints the backup's path. The copy is checked with PRAGMA quick_check before this returns.

    \b
    Example:
      checkpoint store backup --db /var/lib/checkpoint/edge.db --to /var/lib/checkpoint/backups
    """
    from edge.store.db import connect
    from edge.store.migrations import backup, schema_version

    db = connect(db_path, readonly=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            target = backup(db, folder / db_path.name, schema_version(db))
        except sqlite3.Error as exc:
            raise StoreError(f"{db_path}: backup failed: {exc}") from exc
    finally:
        db.conn.close()
    check = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        result = check.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        check.close()
    if result != "ok":
        raise StoreError(f"{target}: the backup does not pass quick_check ({result}); the source may be damaged")
    click.echo(str(target))


@store.command("migrate")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Edge database.")
def migrate_cmd(db_path: Path) -> None:
    """Bring DB's schema to this software's version (a backup is written beside it first).

    Prints one JSON line: the version before, after, and the migrations applied. A database
    that does not exist is left alone (the edge creates it on first start).

    \b
    Example:
      checkpoint store migrate --db /var/lib/checkpoint/edge.db
    """
    from edge.store.chain import meta
    from edge.store.db import connect
    from edge.store.migrations import migrate, schema_version

    if not db_path.exists():
        click.echo(json.dumps({"db": str(db_path), "exists": False}))
        return
    db = connect(db_path)
    try:
        before = schema_version(db)
        edge_id = meta(db).get("edge_id", "") if before > 0 else ""
        try:
            applied = migrate(db, db_path, edge_id)
        except sqlite3.Error as exc:
            raise StoreError(f"{db_path}: migration failed, the database keeps schema v{before}: {exc}") from exc
        click.echo(json.dumps({"db": str(db_path), "exists": True, "before": before, "after": schema_version(db),
                               "applied": applied}))
    finally:
        db.conn.close()


@store.command("schema")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Edge database (omit to print only what this software supports).")
def schema_cmd(db_path: Path | None) -> None:
    """The database's schema version and the newest this software knows, as one JSON line.

    \b
    Example:
      checkpoint store schema --db /var/lib/checkpoint/edge.db
    """
    from edge.store.db import connect
    from edge.store.migrations import MIGRATIONS, schema_version

    out: dict[str, object] = {"supported": MIGRATIONS[-1][0]}
    if db_path is not None:
        db = connect(db_path, readonly=True)
        try:
            out["db"] = str(db_path)
            out["version"] = schema_version(db)
        finally:
            db.conn.close()
    click.echo(json.dumps(out))
