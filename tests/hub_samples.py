"""Chained event envelopes like the edges send, for the dashboard tests (readings, scans, lane sessions)."""

from __future__ import annotations

import numpy as np

from edge.store.records import frame_payload, reading_payload
from edge.thumbnail import make_thumbnail
from sync.envelope import GENESIS_HASH, seal

T0 = 1795867200.0  # 2026-11-28T12:00:00Z


def scan_image(seed: int = 1, height: int = 480, width: int = 960) -> np.ndarray:
    """A smooth grey X-ray-like strip with a dark object: compresses like a real scan, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 200 - 60 * np.exp(-((y - height / 2) ** 2) / (2 * (height / 4) ** 2))
    image = np.clip(base + rng.normal(0, 4, (height, width)), 0, 255).astype(np.uint8)
    image[180:300, 420:560] = 40
    return np.dstack([image] * 3)


class Chain:
    """Seal envelopes one after the other for one edge and epoch, as its outbox would."""

    def __init__(self, edge_id: str, epoch: str = "epoch-1") -> None:
        self.edge_id, self.epoch = edge_id, epoch
        self.prev = GENESIS_HASH
        self.events: list[dict] = []

    def add(self, type_: str, payload: dict, *, session_id: str | None = None, ts: float | None = None) -> dict:
        envelope = seal(edge_id=self.edge_id, edge_epoch=self.epoch, seq=len(self.events) + 1,
                        ts=ts if ts is not None else T0 + len(self.events), type=type_, payload=payload,
                        prev_hash=self.prev, session_id=session_id)
        self.prev = envelope["hash"]
        self.events.append(envelope)
        return envelope

    def reading(self, protocol: str, device: str, fields: dict, *, session_id: str | None = None,
                ts: float | None = None) -> dict:
        return self.add("reading", reading_payload(device_id=device, protocol=protocol, ts="2026-11-28T12:00:00.000Z",
                                                   raw=b"raw bytes\r\n", valid=True, fields=fields, error=None,
                                                   lane_id="lane-1"), session_id=session_id, ts=ts)

    def scan(self, detections: list[dict], *, thumbnail: bool = True, ts: float | None = None) -> dict:
        payload = frame_payload(lane_id="lane-1", camera_id="xray-1", frame_seq=len(self.events), width=960,
                                height=480, captured_at="2026-11-28T12:00:00.000Z", evidence=[],
                                detections=detections)
        if thumbnail and detections:
            payload["thumbnail"] = make_thumbnail(scan_image(), detections)
        return self.add("frame.analysed", payload, ts=ts)


WEAPON = [{"class_name": "weapon", "score": 0.93, "box": [420.0, 180.0, 560.0, 300.0]}]


def site_a_session(chain: Chain, session_id: str = "sess-a-1") -> None:
    """A truck at site A: plate, passport, container, a scan with a weapon, high risk with a watchlist hit."""
    chain.add("session.opened", {"lane_id": "lane-1", "trigger": {"kind": "plate", "device_id": "plate-1"}},
              session_id=session_id)
    chain.reading("plate", "plate-1", {"plate": "A123BC02", "latin": "A123BC02", "text": "A 123 BC 02"},
                  session_id=session_id)
    chain.reading("mrz", "mrz-1", {"document_number": "N12345678", "surname": "IVANOV"}, session_id=session_id)
    chain.reading("barcode", "container-1", {"container": "MSCU1234566", "formatted": "MSCU 123456 6"},
                  session_id=session_id)
    scan = chain.scan(WEAPON)
    chain.add("session.risk", {"score": 85, "threshold": 50, "level": "high", "scans": [{"seq": scan["seq"]}],
                               "reasons": [{"rule": "watchlist.plate", "points": 50,
                                            "text": "plate A123BC02 is on watchlist 'wanted'"},
                                           {"rule": "detection", "points": 35, "text": "weapon on the scan (0.93)"}]},
              session_id=session_id)
    chain.add("decision", {"session_id": session_id, "decision": "detain", "user_id": "anna",
                           "ts": "2026-11-28T12:01:00.000Z"}, session_id=session_id)
    chain.add("session.closed", {"lane_id": "lane-1", "reason": "decided"}, session_id=session_id)


def site_b_events(chain: Chain) -> None:
    """Site B: a radiation alarm, a high-risk session without watchlist, a scan with no thumbnail."""
    chain.reading("radiation", "rad-1", {"alarm": "gamma", "gamma_cps": 900, "neutron_cps": 2})
    chain.reading("plate", "plate-9", {"plate": "777ABC05", "latin": "777ABC05", "text": "777 ABC 05"},
                  session_id="sess-b-1")
    chain.add("session.risk", {"score": 70, "threshold": 50, "level": "high",
                               "reasons": [{"rule": "weight", "points": 70, "text": "weight 30% over declared"}]},
              session_id="sess-b-1")
    chain.scan([{"class_name": "drugs", "score": 0.6, "box": [1.0, 2.0, 30.0, 40.0]}], thumbnail=False)
