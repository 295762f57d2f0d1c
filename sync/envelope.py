"""The event envelope: canonical JSON and the per-edge hash chain. Pure code.

An envelope is ``schema, event_id, edge_id, edge_epoch, seq, ts, type,
session_id, payload, prev_hash, hash``. ``hash`` is the SHA-256 (hex) of the
canonical JSON of every other field (``prev_hash`` included), so each event
commits to the whole history of its edge before it.

Canonical JSON: keys sorted, no insignificant whitespace, UTF-8, no NaN or
infinity. ``sync/schema/event.schema.json`` is the source of truth for the shape.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SCHEMA = "checkpoint.event/1"
GENESIS_HASH = "0" * 64
ENVELOPE_FIELDS = (
    "schema",
    "event_id",
    "edge_id",
    "edge_epoch",
    "seq",
    "ts",
    "type",
    "session_id",
    "payload",
    "prev_hash",
    "hash",
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class EnvelopeError(ValueError):
    """An envelope that is malformed or whose hash does not match its content."""


def canonical_json(value: Any) -> bytes:
    """The one byte form that is hashed: sorted keys, compact, UTF-8, finite numbers."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise EnvelopeError(f"not canonicalisable: {exc}") from exc
    return text.encode("utf-8")


def format_ts(epoch_s: float) -> str:
    """UTC timestamp with milliseconds, e.g. ``2026-11-28T12:00:00.123Z``."""
    dt = datetime.fromtimestamp(epoch_s, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def envelope_hash(envelope: Mapping[str, Any]) -> str:
    body = {k: envelope[k] for k in ENVELOPE_FIELDS if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def seal(
    *,
    edge_id: str,
    edge_epoch: str,
    seq: int,
    ts: float,
    type: str,
    payload: Mapping[str, Any],
    prev_hash: str,
    session_id: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Build a complete envelope and compute its hash."""
    envelope: dict[str, Any] = {
        "schema": SCHEMA,
        "event_id": event_id or str(uuid.uuid4()),
        "edge_id": edge_id,
        "edge_epoch": edge_epoch,
        "seq": seq,
        "ts": format_ts(ts),
        "type": type,
        "session_id": session_id,
        "payload": dict(payload),
        "prev_hash": prev_hash,
    }
    check_shape(envelope, require_hash=False)
    envelope["hash"] = envelope_hash(envelope)
    return envelope


def check_shape(envelope: Mapping[str, Any], *, require_hash: bool = True) -> None:
    """Raise ``EnvelopeError`` naming the first field that is wrong."""
    fields = ENVELOPE_FIELDS if require_hash else ENVELOPE_FIELDS[:-1]
    extra = set(envelope) - set(ENVELOPE_FIELDS)
    if extra:
        raise EnvelopeError(f"unknown field(s): {', '.join(sorted(extra))}")
    for name in fields:
        if name not in envelope:
            raise EnvelopeError(f"missing field {name!r}")
    if envelope["schema"] != SCHEMA:
        raise EnvelopeError(f"schema {envelope['schema']!r} is not {SCHEMA!r}")
    seq = envelope["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise EnvelopeError(f"seq must be a positive integer, got {seq!r}")
    for name in ("edge_id", "edge_epoch", "event_id", "ts"):
        if not isinstance(envelope[name], str) or not envelope[name]:
            raise EnvelopeError(f"{name} must be a non-empty string")
    if not isinstance(envelope["type"], str) or not _TYPE.match(envelope["type"]):
        raise EnvelopeError(f"type {envelope['type']!r} is not a dotted lower-case name")
    if envelope["session_id"] is not None and not isinstance(envelope["session_id"], str):
        raise EnvelopeError("session_id must be a string or null")
    if not isinstance(envelope["payload"], dict):
        raise EnvelopeError("payload must be an object")
    hashes = ("prev_hash", "hash") if require_hash else ("prev_hash",)
    for name in hashes:
        if not isinstance(envelope[name], str) or not _HEX64.match(envelope[name]):
            raise EnvelopeError(f"{name} must be 64 lower-case hex digits")


def verify_envelope(envelope: Mapping[str, Any]) -> None:
    """Check the shape and that ``hash`` matches the content."""
    check_shape(envelope)
    expected = envelope_hash(envelope)
    if envelope["hash"] != expected:
        raise EnvelopeError(f"hash mismatch at seq {envelope['seq']}: content hashes to {expected[:12]}…")
