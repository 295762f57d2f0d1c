"""The edge's side of sync: the store's outbox as the publisher sees it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.config import SyncConfig
from edge.store import Store
from edge.store.chain import OUTBOX_SELECT, envelope_from_row
from sync.publisher import BrokerSettings, DownlinkHandler, Publisher


class StoreOutbox:
    """Unacknowledged events read in seq order; acks recorded through the store's single writer."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.edge_id = store.edge_id
        self.edge_epoch = store.edge_epoch
        self._reader = store.reader()
        # What the runtime adds to the retained status message (the disk alarm); set by the runtime.
        self.status_extra: Callable[[], dict[str, Any]] | None = None

    def pending(self, after: int, limit: int) -> list[dict[str, Any]]:
        rows = self._reader.conn.execute(
            OUTBOX_SELECT + " WHERE acked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [envelope_from_row(self.edge_id, self.edge_epoch, row) for row in rows]

    def between(self, first: int, last: int) -> list[dict[str, Any]]:
        rows = self._reader.conn.execute(
            OUTBOX_SELECT + " WHERE seq >= ? AND seq <= ? ORDER BY seq", (first, last)
        ).fetchall()
        return [envelope_from_row(self.edge_id, self.edge_epoch, row) for row in rows]

    def mark_acked(self, seqs: list[int]) -> None:
        self.store.mark_acked(seqs)

    def backlog(self) -> int:
        return int(self._reader.conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0])

    def close(self) -> None:
        self._reader.conn.close()


def make_publisher(
    store: Store, sync: SyncConfig, downlink: DownlinkHandler | None = None
) -> tuple[Publisher, StoreOutbox]:
    tls = None
    if sync.tls is not None:
        tls = (str(sync.tls.ca_file), str(sync.tls.cert_file), str(sync.tls.key_file))
    broker = BrokerSettings.from_url(
        sync.broker,
        tls=tls,
        username=sync.username,
        password=sync.password.get_secret_value() if sync.password is not None else None,
    )
    outbox = StoreOutbox(store)
    publisher = Publisher(outbox, broker, prefix=sync.topic_prefix, window=sync.window,
                          ack_timeout_s=sync.ack_timeout_s, downlink=downlink)
    return publisher, outbox
