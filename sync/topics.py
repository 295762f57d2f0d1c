"""The MQTT topic layout. One place, used by edge and hub alike.

=================================  =========  =====================================
topic                              direction  payload
=================================  =========  =====================================
``P/edge/{edge_id}/events``        edge→hub   one event envelope (JSON), QoS 1
``P/edge/{edge_id}/ack``           hub→edge   ``{"edge_epoch", "seqs": [...]}`` after the hub's commit
``P/edge/{edge_id}/status``        edge→all   retained ``{"state": "online"|"offline", ...}``; last will = offline
=================================  =========  =====================================

``P`` is the configured prefix (``checkpoint``). The broker's ACL lets an edge
write only under its own ``edge/{its id}/``; the hub also checks that an
envelope's ``edge_id`` matches the topic it came on.
"""

from __future__ import annotations

SHARE_GROUP = "hub"


def events(prefix: str, edge_id: str) -> str:
    return f"{prefix}/edge/{edge_id}/events"


def ack(prefix: str, edge_id: str) -> str:
    return f"{prefix}/edge/{edge_id}/ack"


def status(prefix: str, edge_id: str) -> str:
    return f"{prefix}/edge/{edge_id}/status"


def all_events(prefix: str) -> str:
    """Shared subscription of every hub worker: each event goes to one worker of the group."""
    return f"$share/{SHARE_GROUP}/{prefix}/edge/+/events"


def edge_of(topic: str, prefix: str) -> str | None:
    """The edge id in an events topic, or None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == prefix and parts[1] == "edge" and parts[3] == "events" and parts[2]:
        return parts[2]
    return None
