"""A ``Reading``: everything one device said in one frame, parsed or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Reading:
    """One frame (or one run of unframeable bytes) from a device.

    ``raw`` is always exactly the bytes received, framing included. A frame that
    does not parse is still a Reading with ``valid=False``, the names of the
    checks that failed and a one-line ``error``: nothing a device sent is dropped.
    """

    device_id: str
    protocol: str
    ts: float  # seconds since the epoch (UTC) when the frame was complete
    raw: bytes
    valid: bool
    fields: dict[str, Any] = field(default_factory=dict)
    failed: tuple[str, ...] = ()
    error: str | None = None
    kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (raw as latin-1-safe hex and as text where printable)."""
        return {
            "device_id": self.device_id,
            "protocol": self.protocol,
            "ts": self.ts,
            "raw_hex": self.raw.hex(),
            "raw_text": self.raw.decode("latin-1"),
            "valid": self.valid,
            "kind": self.kind,
            "fields": self.fields,
            "failed": list(self.failed),
            "error": self.error,
        }
