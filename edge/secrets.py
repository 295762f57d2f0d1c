"""Secrets come from the environment or systemd credentials, never from the config file.

In YAML a secret is written as a reference::

    password: {env: CHECKPOINT_MQTT_PASSWORD}
    password: {credential: mqtt-password}   # $CREDENTIALS_DIRECTORY/mqtt-password

and becomes a ``pydantic.SecretStr`` whose ``repr`` and ``str`` show ``**********``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr


def _resolve(value: Any) -> SecretStr:
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        raise ValueError("secrets may not be written in the config file; use {env: VAR} or {credential: NAME}")
    if not isinstance(value, dict) or len(value) != 1 or not ({"env", "credential"} & set(value)):
        raise ValueError("a secret is {env: VAR} or {credential: NAME}")
    if "env" in value:
        name = str(value["env"])
        secret = os.environ.get(name)
        if secret is None:
            raise ValueError(f"environment variable {name} is not set")
        return SecretStr(secret)
    name = str(value["credential"])
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"credential name {name!r} must be a plain file name")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ValueError(
            f"credential {name!r} asked for but $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)"
        )
    path = Path(directory) / name
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ValueError(f"credential {name!r} cannot be read: {exc.strerror}") from exc


Secret = Annotated[SecretStr, BeforeValidator(_resolve)]
