"""Prometheus metrics of the hub, read from its store at each scrape (prometheus-client collector)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sync.dashboard.queries import HubReader
from sync.dashboard.views import edge_rows


class HubCollector(Collector):
    def __init__(self, reader: HubReader, clock: Callable[[], float] = time.time) -> None:
        self.reader = reader
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("checkpoint_hub_db_up", "1 when the hub database answered this scrape")
        try:
            events, quarantined = self.reader.counts()
            edges = edge_rows(self.reader.edges(), self.reader.statuses(), self.clock())
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("checkpoint_hub_events_stored", "Events stored in the hub database", value=events)
        yield GaugeMetricFamily("checkpoint_hub_messages_quarantined",
                                "Messages the hub refused and kept with the reason", value=quarantined)
        labels = ["edge_id", "edge_epoch"]
        families = {
            "watermark": GaugeMetricFamily("checkpoint_hub_edge_watermark",
                                           "Contiguous seq stored for the edge (no gap below it)", labels=labels),
            "held": GaugeMetricFamily("checkpoint_hub_edge_events_above_gap",
                                      "Events stored above the watermark, waiting for a gap to fill", labels=labels),
            "lag": GaugeMetricFamily("checkpoint_hub_edge_watermark_lag_seconds",
                                     "Now minus the edge time of the event at the watermark (0 when the edge"
                                     " reports no backlog and no gap waits)", labels=labels),
            "backlog": GaugeMetricFamily("checkpoint_hub_edge_backlog_events",
                                         "Unacknowledged events the edge reported in its last status", labels=labels),
            "online": GaugeMetricFamily("checkpoint_hub_edge_online", "1 when the edge's status is online",
                                        labels=labels),
            "chain": GaugeMetricFamily("checkpoint_hub_edge_chain_ok", "0 when the hub found a break in the hash chain",
                                       labels=labels),
        }
        for e in edges:
            key = [e["edge_id"], e["edge_epoch"] or ""]
            families["watermark"].add_metric(key, e["watermark"])
            families["held"].add_metric(key, e["held_above_gap"])
            if e["watermark_lag_s"] is not None:
                families["lag"].add_metric(key, e["watermark_lag_s"])
            if e["backlog"] is not None:
                families["backlog"].add_metric(key, e["backlog"])
            families["online"].add_metric(key, 1 if e["state"] == "online" else 0)
            families["chain"].add_metric(key, 1 if e["chain_ok"] else 0)
        yield from families.values()


def hub_registry(reader: HubReader) -> CollectorRegistry:
    """A registry of its own (not the process-wide default), so several apps can live in one process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(reader))
    return registry
