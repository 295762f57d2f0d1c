"""The MQTT topic layout. One place, used by edge and hub alike.

======================================  =========  ==================================================
topic                                   direction  payload
======================================  =========  ==================================================
``P/edge/{edge_id}/events``             edge→hub   one event envelope (JSON), QoS 1
``P/edge/{edge_id}/ack``                hub→edge   ``{"edge_epoch", "seqs": [...], "ts"}`` after the hub's commit
``P/edge/{edge_id}/status``             edge→all   retained ``{"state": "online"|"offline", "backlog", "downlink"}``;
                                                   last will = offline
``P/edge/{edge_id}/resend``             hub→edge   ``{"edge_epoch", "from_seq", "to_seq"}``: a gap outlived the
                                                   hub's timeout; the edge sends that range again from its outbox
``P/downlink/{kind}/{name}``            hub→edges  retained signed downlink document for every edge (``targets: ["*"]``)
``P/edge/{edge_id}/downlink/{kind}/{name}``  hub→edge  retained signed downlink document for named edges
``P/edge/{edge_id}/downlink-ack``       edge→hub   ``{"kind", "name", "version", "status", "reason", "detail"}``
======================================  =========  ==================================================

``P`` is the configured prefix (``checkpoint``). The broker's ACL lets an edge
write only under its own ``edge/{its id}/`` (events, status, downlink-ack); the
hub also checks that an envelope's ``edge_id`` matches the topic it came on.
A hub forwarding to a partner hub is, on the partner's broker, an edge like any
other (its id is its certificate's CN there).
"""

from __future__ import annotations

SHARE_GROUP = "hub"


def events(prefix: str, edge_id: str) -> str:
    return f"{prefix}/edge/{edge_id}/events"


def ack(prefix: str, edge_id: str) -> str:
    return f"{prefix}/edge/{edge_id}/ack"


def status(prefix: str, edge_id: str) -> str:
    return f"{prefix}/edge/{edge_id}/status"


def resend(prefix: str, edge_id: str) -> str:
    return f"{prefix}/edge/{edge_id}/resend"


def downlink_all(prefix: str, kind: str, name: str) -> str:
    return f"{prefix}/downlink/{kind}/{name}"


def downlink_edge(prefix: str, edge_id: str, kind: str, name: str) -> str:
    return f"{prefix}/edge/{edge_id}/downlink/{kind}/{name}"


def downlink_subscriptions(prefix: str, edge_id: str) -> list[str]:
    """What an edge subscribes to for its downlink (both are retained)."""
    return [f"{prefix}/downlink/+/+", f"{prefix}/edge/{edge_id}/downlink/+/+"]


def downlink_ack(prefix: str, edge_id: str) -> str:
    return f"{prefix}/edge/{edge_id}/downlink-ack"


def all_events(prefix: str) -> str:
    """Shared subscription of every hub worker: each event goes to one worker of the group."""
    return f"$share/{SHARE_GROUP}/{prefix}/edge/+/events"


def all_downlink_acks(prefix: str) -> str:
    """Shared subscription of the hub workers to every edge's downlink acks."""
    return f"$share/{SHARE_GROUP}/{prefix}/edge/+/downlink-ack"


def edge_of(topic: str, prefix: str, leaf: str = "events") -> str | None:
    """The edge id in a ``P/edge/{id}/{leaf}`` topic, or None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == prefix and parts[1] == "edge" and parts[3] == leaf and parts[2]:
        return parts[2]
    return None
