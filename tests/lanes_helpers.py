"""Shared by the lane tests: readings made by the real parsers, as the runtime feeds them."""

from __future__ import annotations

import itertools
from typing import Any

from drivers.serial.decoder import Decoder
from edge.lanes.session import ReadingObs

_seq = itertools.count(1)


def reading(protocol: str, wire: bytes, ts: float, seq: int | None = None) -> ReadingObs:
    decoder = Decoder("dev-" + protocol, protocol, None)
    out = list(decoder.feed(wire, ts)) + list(decoder.flush(ts))
    assert len(out) == 1, out
    r = out[0]
    return ReadingObs(seq if seq is not None else next(_seq), r.device_id, r.protocol, ts, r.valid, r.kind,
                      dict(r.fields), tuple(r.failed), r.error)


class TruthAnalyser:
    """A perfect detector for simulated scans: the scene's ground truth, scored 0.9.

    The runtime's ``analyser`` seam; it lets lane tests know exactly what was "detected"
    without depending on a trained model's recall.
    """

    model_sha256 = None

    def __call__(self, frame: Any) -> list[dict[str, Any]]:
        return [{"class_name": t.class_name, "score": 0.9, "box": [t.x1, t.y1, t.x2, t.y2]} for t in frame.truth]
