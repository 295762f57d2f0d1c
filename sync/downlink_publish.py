"""The hub's side of the downlink: sign a document and publish it, retained, for the edges.

A document for every edge (``targets: ["*"]``) goes to ``P/downlink/{kind}/{name}``;
one for named edges goes to ``P/edge/{id}/downlink/{kind}/{name}`` for each.
Both are retained with QoS 1, so an edge that connects later (or reconnects)
receives the newest version at once; the broker's PUBACK reason code is
checked (a denied publish is an error, not a silent success).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync import downlink, topics
from sync.envelope import canonical_json
from sync.publisher import BrokerSettings, make_client


class DownlinkPublishError(RuntimeError):
    """The document could not be built or the broker did not take it."""


def read_body(kind: str, path: str | Path) -> dict[str, Any]:
    """A watchlist (``{"entries": [...]}`` or a bare list of entries) or a config body, from a JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DownlinkPublishError(f"{path}: cannot read: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise DownlinkPublishError(f"{path}: not JSON: {exc}") from exc
    if kind == "watchlist" and isinstance(data, list):
        data = {"entries": data}
    if not isinstance(data, dict):
        raise DownlinkPublishError(f"{path}: a {kind} body must be a JSON object")
    return data


def make_document(
    *,
    kind: str,
    name: str,
    version: int,
    body: dict[str, Any],
    key: Ed25519PrivateKey,
    targets: Sequence[str] = ("*",),
    expires_in_s: float | None = None,
    now: float | None = None,
) -> bytes:
    """The signed document as the bytes that go on the wire."""
    now = time.time() if now is None else now
    try:
        doc = downlink.build(kind=kind, name=name, version=version, body=body, issued_at=now, targets=list(targets),
                             expires_at=None if expires_in_s is None else now + expires_in_s)
        return canonical_json(downlink.sign(doc, key))
    except downlink.DownlinkRejected as exc:
        raise DownlinkPublishError(f"the document would be refused by every edge: {exc}") from exc


def topics_for(prefix: str, kind: str, name: str, targets: Sequence[str]) -> list[str]:
    if "*" in targets:
        return [topics.downlink_all(prefix, kind, name)]
    return [topics.downlink_edge(prefix, edge, kind, name) for edge in targets]


def publish(
    broker: BrokerSettings, prefix: str, document: bytes, *, client_id: str, timeout: float = 15.0
) -> list[str]:
    """Publish ``document`` (signed bytes) retained on its topics; return them. Raises ``DownlinkPublishError``."""
    doc = json.loads(document)
    targets = doc.get("targets") or ["*"]
    out = topics_for(prefix, doc["kind"], doc["name"], targets)
    client = make_client(client_id, broker)
    connected = threading.Event()
    refused: list[str] = []
    acks: dict[int, Any] = {}
    client.on_connect = lambda _c, _u, _f, rc, _p: (refused.append(str(rc)) if rc.is_failure else connected.set())
    client.on_publish = lambda _c, _u, mid, rc, _p: acks.__setitem__(mid, rc)
    try:
        client.connect(broker.host, broker.port, keepalive=broker.keepalive)
    except OSError as exc:
        raise DownlinkPublishError(f"cannot connect to broker {broker.host}:{broker.port}: {exc}") from exc
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not connected.is_set():
            if refused or time.monotonic() > deadline:
                raise DownlinkPublishError(f"broker refused the connection: {refused[0] if refused else 'timeout'}")
            time.sleep(0.02)
        mids = [client.publish(topic, document, qos=1, retain=True).mid for topic in out]
        while not all(mid in acks for mid in mids):
            if time.monotonic() > deadline:
                raise DownlinkPublishError("no PUBACK from the broker in time")
            time.sleep(0.02)
        for topic, mid in zip(out, mids, strict=True):
            if acks[mid].is_failure:
                raise DownlinkPublishError(f"broker refused the publish on {topic}: {acks[mid]}")
    finally:
        client.disconnect()
        client.loop_stop()
    return out


__all__ = ["DownlinkPublishError", "make_document", "publish", "read_body", "topics_for"]
