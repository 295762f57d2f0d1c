"""Signed downlink documents (hub → edge): watchlists and config changes. Pure code.

A downlink document is a JSON object::

    {
      "schema": "checkpoint.downlink/1",
      "kind": "watchlist" | "config",
      "name": "plates",                     # lower-case identifier
      "version": 7,                         # monotonic per (kind, name), >= 1
      "issued_at": "2026-11-28T12:00:00.000Z",
      "targets": ["*"] | ["edge-1", ...],
      "expires_at": "2026-12-01T00:00:00.000Z",   # optional; apply no later than this
      "body": {...},
      "key_id": "0123456789abcdef",         # first 16 hex of SHA-256 of the raw public key
      "signature": "<base64>"               # Ed25519 over canonical_json(everything but "signature")
    }

``canonical_json`` is the event envelope's (``sync.envelope``): sorted keys,
compact, UTF-8, finite numbers. ``key_id`` is inside the signed bytes, so a
signature cannot be moved to another key's name.

``verify`` checks, in this order, and raises ``DownlinkRejected`` with a stable
reason code on the first failure (``REASONS``):

``malformed``          not a JSON object of the shape above (also: duplicate keys, NaN, too large)
``unsigned``           no ``signature`` / ``key_id``
``unknown_key``        ``key_id`` is not among the edge's trusted keys
``bad_signature``      the signature does not verify (any tampering lands here)
``not_for_this_edge``  ``targets`` names neither ``*`` nor this edge
``stale_version``      ``version`` <= the active one: a replay or a rollback
``expired``            ``expires_at`` has passed

``expires_at`` bounds when a document may be *applied* (a downlink that sat in a
queue for a week is refused); it does not end the life of a list already active.

The only I/O here is in the explicit key-file helpers at the bottom. Nothing in
this module logs or formats key material; errors name keys by ``key_id`` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.envelope import EnvelopeError, canonical_json, format_ts

SCHEMA = "checkpoint.downlink/1"
KINDS = ("watchlist", "config")
WATCHLIST_TYPES = ("plate", "document", "name_dob", "container")
REASONS = (
    "malformed",
    "unsigned",
    "unknown_key",
    "bad_signature",
    "not_for_this_edge",
    "stale_version",
    "expired",
)
MAX_DOWNLINK_BYTES = 16 * 1024 * 1024
MAX_ENTRY_VALUE = 256
MAX_ENTRY_TEXT = 1024

_SIGNED_FIELDS = frozenset({"schema", "kind", "name", "version", "issued_at", "targets", "body", "key_id"})
_OPTIONAL_FIELDS = frozenset({"expires_at"})
_ALL_FIELDS = _SIGNED_FIELDS | _OPTIONAL_FIELDS | {"signature"}
_ENTRY_FIELDS = frozenset({"type", "value", "reason", "source"})
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_TARGET = re.compile(r"^[A-Za-z0-9_.-]{1,128}$|^\*$")


class DownlinkRejected(ValueError):
    """A downlink that must not be applied. ``reason`` is one of ``REASONS``; ``detail`` is for people."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class KeyFileError(ValueError):
    """A key file that cannot be written or read as an Ed25519 key (the message never holds key bytes)."""


@dataclass(frozen=True)
class VerifiedDownlink:
    kind: str
    name: str
    version: int
    issued_at: str
    targets: tuple[str, ...]
    expires_at: str | None
    body: dict[str, Any]
    key_id: str
    hash: str  # SHA-256 (hex) of the signed bytes
    document: dict[str, Any]  # the whole signed document, signature included


# ---------------------------------------------------------------- parsing and shape


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DownlinkRejected("malformed", f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise DownlinkRejected("malformed", f"non-finite number {name}")


def parse(raw: bytes | str, *, max_bytes: int = MAX_DOWNLINK_BYTES) -> dict[str, Any]:
    """Bytes off the wire to a JSON object, strictly: UTF-8, no duplicate keys, no NaN/Infinity."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise DownlinkRejected("malformed", f"{len(data)} bytes is over the {max_bytes}-byte limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DownlinkRejected("malformed", f"not UTF-8 at byte {exc.start}") from exc
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except DownlinkRejected:
        raise
    except (ValueError, RecursionError) as exc:
        raise DownlinkRejected("malformed", f"not JSON: {str(exc)[:120]}") from exc
    if not isinstance(doc, dict):
        raise DownlinkRejected("malformed", f"top level is {type(doc).__name__}, not an object")
    return doc


def parse_ts(value: Any, field: str) -> float:
    """An ISO UTC timestamp with milliseconds (``format_ts``'s form) to epoch seconds."""
    if not isinstance(value, str) or not _TS.match(value):
        raise DownlinkRejected("malformed", f"{field} must look like 2026-11-28T12:00:00.000Z")
    try:
        dt = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DownlinkRejected("malformed", f"{field} is not a real time") from exc
    return dt.timestamp()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_watchlist_body(body: Any) -> None:
    """``{"entries": [{"type", "value", "reason", "source"}, ...]}``; raises ``DownlinkRejected('malformed')``."""
    if not isinstance(body, dict) or set(body) != {"entries"}:
        raise DownlinkRejected("malformed", 'a watchlist body is exactly {"entries": [...]}')
    entries = body["entries"]
    if not isinstance(entries, list):
        raise DownlinkRejected("malformed", "watchlist entries must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != _ENTRY_FIELDS:
            raise DownlinkRejected("malformed", f"entry {i} must have exactly type, value, reason, source")
        if entry["type"] not in WATCHLIST_TYPES:
            raise DownlinkRejected("malformed", f"entry {i}: type must be one of {', '.join(WATCHLIST_TYPES)}")
        value = entry["value"]
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_ENTRY_VALUE:
            raise DownlinkRejected("malformed", f"entry {i}: value must be a non-empty string of <= {MAX_ENTRY_VALUE}")
        for name in ("reason", "source"):
            if not isinstance(entry[name], str) or len(entry[name]) > MAX_ENTRY_TEXT:
                raise DownlinkRejected("malformed", f"entry {i}: {name} must be a string of <= {MAX_ENTRY_TEXT}")


def check_shape(doc: Mapping[str, Any], *, require_signature: bool = True) -> None:
    """Raise ``DownlinkRejected('malformed')`` naming the first field that is wrong."""
    if not isinstance(doc, Mapping):
        raise DownlinkRejected("malformed", "not an object")
    extra = set(doc) - _ALL_FIELDS
    if extra:
        raise DownlinkRejected("malformed", "unknown field(s): " + ", ".join(sorted(k[:40] for k in extra)[:5]))
    required = _SIGNED_FIELDS | ({"signature"} if require_signature else set())
    for name in sorted(required):
        if name not in doc:
            raise DownlinkRejected("malformed", f"missing field {name!r}")
    if doc["schema"] != SCHEMA:
        raise DownlinkRejected("malformed", f"schema must be {SCHEMA!r}")
    if doc["kind"] not in KINDS:
        raise DownlinkRejected("malformed", f"kind must be one of {', '.join(KINDS)}")
    if not isinstance(doc["name"], str) or not _NAME.match(doc["name"]):
        raise DownlinkRejected("malformed", "name must be a lower-case identifier (a-z, 0-9, _ -; <= 64)")
    if not _is_int(doc["version"]) or doc["version"] < 1:
        raise DownlinkRejected("malformed", "version must be a positive integer")
    parse_ts(doc["issued_at"], "issued_at")
    if doc.get("expires_at") is not None:
        parse_ts(doc["expires_at"], "expires_at")
    targets = doc["targets"]
    if (
        not isinstance(targets, list)
        or not targets
        or not all(isinstance(t, str) and _TARGET.match(t) for t in targets)
    ):
        raise DownlinkRejected("malformed", 'targets must be a non-empty list of edge ids or ["*"]')
    if not isinstance(doc["body"], dict):
        raise DownlinkRejected("malformed", "body must be an object")
    if doc["kind"] == "watchlist":
        check_watchlist_body(doc["body"])
    if not isinstance(doc["key_id"], str) or not _KEY_ID.match(doc["key_id"]):
        raise DownlinkRejected("malformed", "key_id must be 16 lower-case hex digits")
    if require_signature and not isinstance(doc["signature"], str):
        raise DownlinkRejected("malformed", "signature must be a base64 string")


def signed_bytes(doc: Mapping[str, Any]) -> bytes:
    """What the signature covers: canonical JSON of every field except ``signature``."""
    try:
        return canonical_json({k: v for k, v in doc.items() if k != "signature"})
    except EnvelopeError as exc:
        raise DownlinkRejected("malformed", str(exc)[:120]) from exc


def content_hash(doc: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the signed bytes: identifies a document whatever its JSON spacing."""
    return hashlib.sha256(signed_bytes(doc)).hexdigest()


# ---------------------------------------------------------------- building, signing, verifying


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the 32 raw public key bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def build(
    *,
    kind: str,
    name: str,
    version: int,
    body: Mapping[str, Any],
    issued_at: float,
    targets: list[str] | tuple[str, ...] = ("*",),
    expires_at: float | None = None,
) -> dict[str, Any]:
    """An unsigned document (times in epoch seconds); pass it to ``sign``."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": kind,
        "name": name,
        "version": version,
        "issued_at": format_ts(issued_at),
        "targets": list(targets),
        "body": dict(body),
    }
    if expires_at is not None:
        doc["expires_at"] = format_ts(expires_at)
    return doc


def sign(doc: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A signed copy of ``doc``: ``key_id`` set from the key, ``signature`` over everything else.

    Raises ``DownlinkRejected('malformed')`` when ``doc`` is not a valid document,
    so a hub never publishes what every edge would refuse.
    """
    out = {k: v for k, v in doc.items() if k not in ("signature", "key_id")}
    out["key_id"] = public_key_id(private_key.public_key())
    check_shape(out, require_signature=False)
    out["signature"] = base64.b64encode(private_key.sign(signed_bytes(out))).decode("ascii")
    return out


def verify(
    doc: Mapping[str, Any],
    trusted_keys: Mapping[str, Ed25519PublicKey],
    *,
    edge_id: str,
    current_version: int | None,
    now: float,
) -> VerifiedDownlink:
    """Check signature, shape, target, version and expiry; raise ``DownlinkRejected`` on the first failure.

    ``current_version`` is the version active on this edge for the document's
    ``(kind, name)`` (None: none yet); ``now`` is epoch seconds.
    """
    if not isinstance(doc, Mapping):
        raise DownlinkRejected("malformed", "not an object")
    if not doc.get("signature") or not doc.get("key_id"):
        raise DownlinkRejected("unsigned", "no signature" if not doc.get("signature") else "no key_id")
    key_id = doc["key_id"]
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise DownlinkRejected("malformed", "key_id must be 16 lower-case hex digits")
    public_key = trusted_keys.get(key_id)
    if public_key is None:
        raise DownlinkRejected("unknown_key", f"key {key_id} is not trusted by this edge")
    signature = doc["signature"]
    if not isinstance(signature, str):
        raise DownlinkRejected("bad_signature", "signature is not a string")
    try:
        sig = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DownlinkRejected("bad_signature", "signature is not base64") from exc
    if len(sig) != 64:
        raise DownlinkRejected("bad_signature", f"signature is {len(sig)} bytes, not 64")
    message = signed_bytes(doc)
    try:
        public_key.verify(sig, message)
    except InvalidSignature as exc:
        raise DownlinkRejected("bad_signature", f"signature does not verify with key {key_id}") from exc
    # Signed by a trusted key: the content is the hub's. Now check what it says.
    check_shape(doc)
    targets = doc["targets"]
    if "*" not in targets and edge_id not in targets:
        raise DownlinkRejected("not_for_this_edge", f"targets do not include {edge_id}")
    version = doc["version"]
    if current_version is not None and version <= current_version:
        raise DownlinkRejected("stale_version", f"version {version} <= active version {current_version}")
    expires_at = doc.get("expires_at")
    if expires_at is not None and now >= parse_ts(expires_at, "expires_at"):
        raise DownlinkRejected("expired", f"expired at {expires_at}")
    return VerifiedDownlink(
        kind=doc["kind"],
        name=doc["name"],
        version=version,
        issued_at=doc["issued_at"],
        targets=tuple(targets),
        expires_at=expires_at,
        body=doc["body"],
        key_id=key_id,
        hash=hashlib.sha256(message).hexdigest(),
        document=dict(doc),
    )


# ---------------------------------------------------------------- key files (the only I/O here)


def generate_keypair() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    private_key = Ed25519PrivateKey.generate()
    return private_key, private_key.public_key()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """PEM SubjectPublicKeyInfo: what edges are given to trust (public, fine to print)."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def _write_file(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """Write with ``mode`` from the first byte on; never a moment with looser permissions."""
    path = Path(path)
    if not overwrite:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError as exc:
            raise KeyFileError(f"{path} exists; refusing to overwrite it") from exc
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot create: {exc.strerror}") from exc
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed it; make it exact
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create: {exc.strerror}") from exc
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        Path(tmp).unlink(missing_ok=True)
        raise


def save_private_key(
    private_key: Ed25519PrivateKey, path: str | Path, *, overwrite: bool = False, password: bytes | None = None
) -> None:
    """PEM PKCS#8 at ``path`` with mode 0600; refuses an existing file unless ``overwrite``."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    _write_file(Path(path), pem, 0o600, overwrite)


def save_public_key(public_key: Ed25519PublicKey, path: str | Path, *, overwrite: bool = False) -> None:
    """PEM SubjectPublicKeyInfo at ``path`` with mode 0644."""
    _write_file(Path(path), public_key_pem(public_key).encode("ascii"), 0o644, overwrite)


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from exc


def load_private_key(
    path: str | Path, *, password: bytes | None = None, allow_open_permissions: bool = False
) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM PKCS#8 file that only its owner can read (as ssh insists)."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from exc
    if mode & 0o077 and not allow_open_permissions:
        raise KeyFileError(f"{path}: mode {mode:04o} lets others read the private key; chmod 600 it")
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        # The library's message does not echo key bytes, but keep ours generic anyway.
        raise KeyFileError(f"{path}: not a readable PEM private key (wrong password or format)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM SubjectPublicKeyInfo file."""
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return key


def load_trusted_keys(paths: Iterable[str | Path]) -> dict[str, Ed25519PublicKey]:
    """``{key_id: public key}`` from PEM files: what ``verify`` and ``DownlinkStore`` trust."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        key = load_public_key(path)
        keys[public_key_id(key)] = key
    return keys
