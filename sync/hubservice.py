"""A hub process: its workers, and the forwarder to a partner hub when configured.

Each worker has its own database connection and its own MQTT client (unique id
per process). The forwarder is an edge publisher (``sync.publisher``) whose
outbox is this hub's ``forward_outbox`` (``sync.forward``), connected to the
partner's broker under this hub's partner id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.forward import ForwardOutbox
from sync.hub import HubWorker, unique_client_id
from sync.hubconfig import HubConfig
from sync.hubstore import HubStore, open_hub_store
from sync.publisher import Publisher

log = logging.getLogger(__name__)


@dataclass
class HubService:
    config: HubConfig
    base_dir: Path | None = None

    def __post_init__(self) -> None:
        self.workers: list[HubWorker] = []
        self.stores: list[HubStore] = []
        self.forwarder: Publisher | None = None
        self._forward_outbox: ForwardOutbox | None = None

    @property
    def target(self) -> str:
        return self.config.storage.target(self.base_dir)

    def start(self) -> HubService:
        cfg = self.config
        spec = cfg.forward.spec() if cfg.forward is not None else None
        broker = cfg.broker.settings()
        for i in range(cfg.workers):
            store = open_hub_store(self.target, spec)
            self.stores.append(store)
            worker = HubWorker(store, broker, prefix=cfg.topic_prefix, worker_id=f"w{i + 1}",
                               batch_max=cfg.storage.batch_max, gap_timeout_s=cfg.gap_timeout_s)
            self.workers.append(worker)
        for worker in self.workers:
            worker.start()
        if cfg.forward is not None:
            self._forward_outbox = ForwardOutbox(self.target)
            self.forwarder = Publisher(
                self._forward_outbox, cfg.forward.broker.settings(), prefix=cfg.forward.topic_prefix,
                window=cfg.forward.window, ack_timeout_s=cfg.forward.ack_timeout_s,
                client_id=unique_client_id(f"fwd-{cfg.forward.partner_id}"),
            )
            self.forwarder.start()
        return self

    def wait_ready(self, timeout: float) -> bool:
        return all(worker.wait_ready(timeout) for worker in self.workers)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            key: sum(getattr(w.stats, key) for w in self.workers)
            for key in ("stored", "duplicates", "quarantined", "resend_requests", "downlink_acks", "store_errors")
        }
        if self.forwarder is not None and self._forward_outbox is not None:
            s = self.forwarder.stats
            out["forward"] = {"connected": s.connected, "published": s.published, "acked": s.acked,
                              "backlog": self._forward_outbox.backlog(), "last_error": s.last_error}
        return out

    def stop(self, timeout: float = 5.0) -> None:
        for worker in self.workers:
            worker.stop()
        if self.forwarder is not None:
            self.forwarder.stop()
        for worker in self.workers:
            worker.join(timeout)
        if self.forwarder is not None:
            self.forwarder.join(timeout)
        if self._forward_outbox is not None:
            self._forward_outbox.close()
        for store in self.stores:
            try:
                store.close()
            except Exception:
                log.debug("hub: closing a store failed", exc_info=True)
