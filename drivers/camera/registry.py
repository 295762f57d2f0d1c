"""Pick a camera driver by URL scheme from an explicit registry.

Each driver module declares its scheme(s), a pydantic model of its query options
(unknown options are rejected) and a one-line grammar shown in every error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError

from drivers.camera.base import Camera
from drivers.errors import InvalidDeviceURL


@dataclass(frozen=True)
class CameraContext:
    """What the runtime gives a driver besides its URL.

    ``state_dir`` is a folder the driver may use to remember progress across
    restarts (``folder://`` keeps its journal of processed files there).
    """

    state_dir: Path | None = None


Factory = Callable[[str, Any, CameraContext], Camera]


@dataclass(frozen=True)
class DriverSpec:
    scheme: str
    grammar: str
    options: type[BaseModel]
    factory: Factory


_REGISTRY: dict[str, DriverSpec] = {}


def register(spec: DriverSpec) -> None:
    """Add a driver; registering the same scheme twice is a programming error."""
    if spec.scheme in _REGISTRY:
        raise RuntimeError(f"camera scheme {spec.scheme!r} registered twice")
    _REGISTRY[spec.scheme] = spec


def schemes() -> Mapping[str, DriverSpec]:
    _load_builtin()
    return dict(_REGISTRY)


# Query keys that carry credentials in camera URLs (snapshot CGIs: ?user=admin&pwd=...).
_SECRET_KEYS = re.compile(r"(?i)^(pass|passwd|password|pwd|secret|token|key|auth|api_?key|access_?token)$")


def redact_url(url: str) -> str:
    """The URL with any password (in the authority or the query) replaced, safe for logs and the database."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"  # keeps [IPv6] hosts and ports as written
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_KEYS.match(k) for k, _ in pairs):
            query = "&".join(f"{k}={'***' if _SECRET_KEYS.match(k) else v}" for k, v in pairs)
    if "://" in parts.fragment:  # a wrapped device's URL (record:///dir#rtsp://user:pass@...)
        outer, _, inner = url.partition("#")
        return f"{redact_url(outer)}#{redact_url(inner)}"
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_options(url: str, spec: DriverSpec) -> BaseModel:
    """Validate the query string of ``url`` against the driver's options model."""
    query = urlsplit(url).query
    raw: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in raw:
            raise InvalidDeviceURL(f"{redact_url(url)}: option {key!r} given twice; expected {spec.grammar}")
        raw[key] = value
    try:
        return spec.options.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidDeviceURL(f"{redact_url(url)}: {problems}; expected {spec.grammar}") from exc


def create_camera(url: str, context: CameraContext | None = None) -> Camera:
    """Build (but do not open) the camera for ``url``.

    Raises ``InvalidDeviceURL`` for an unknown scheme or bad options, naming what
    is accepted.
    """
    _load_builtin()
    scheme = urlsplit(url).scheme.lower()
    spec = _REGISTRY.get(scheme)
    if spec is None:
        known = ", ".join(f"{s}:// ({_REGISTRY[s].grammar})" for s in sorted(_REGISTRY))
        raise InvalidDeviceURL(f"{redact_url(url)}: unknown camera scheme {scheme!r}; known: {known}")
    options = parse_options(url, spec)
    return spec.factory(url, options, context or CameraContext())


_loaded = False


def _load_builtin() -> None:
    """Import the built-in driver modules, each of which calls ``register``."""
    global _loaded
    if _loaded:
        return
    from drivers.camera import folder, opencv, record, sim  # noqa: F401

    _loaded = True
