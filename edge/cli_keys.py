"""``checkpoint keys``: the hub's Ed25519 downlink signing key (create, show the public half)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.errors import EdgeError


@click.group()
def keys() -> None:
    """Ed25519 keys that sign the downlink (watchlists, config)."""


@keys.command("create")
@click.argument("private_key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public", "public_key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the public key (default: PRIVATE_KEY with .pub).")
@click.option("--force", is_flag=True, help="Replace existing files.")
def keys_create(private_key: Path, public_key: Path | None, force: bool) -> None:
    """Create a signing key pair: the private key mode 0600, the public key (for the edges) 0644.

    \b
    Example:
      checkpoint keys create /etc/checkpoint-hub/downlink.key
    """
    from sync import downlink as dl

    public_key = public_key or private_key.with_suffix(".pub")
    private, public = dl.generate_keypair()
    try:
        dl.save_private_key(private, private_key, overwrite=force)
        dl.save_public_key(public, public_key, overwrite=force)
    except dl.KeyFileError as exc:
        raise EdgeError(str(exc)) from exc
    click.echo(json.dumps({"private_key": str(private_key), "public_key": str(public_key),
                           "key_id": dl.public_key_id(public)}, sort_keys=True))


@keys.command("show")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def keys_show(key_file: Path) -> None:
    """Print the key id and the public key (PEM) of a private or public key file; never the private key.

    \b
    Example:
      checkpoint keys show /etc/checkpoint-hub/downlink.key > hub-downlink.pub
    """
    from sync import downlink as dl

    try:
        text = key_file.read_bytes()
    except OSError as exc:
        raise EdgeError(f"{key_file}: cannot read: {exc.strerror}") from exc
    try:
        public = dl.load_private_key(key_file).public_key() if b"PRIVATE KEY" in text else dl.load_public_key(key_file)
    except dl.KeyFileError as exc:
        raise EdgeError(str(exc)) from exc
    click.echo(f"# key_id {dl.public_key_id(public)}", err=True)
    click.echo(dl.public_key_pem(public), nl=False)
