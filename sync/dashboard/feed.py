"""The live alert feed: one thread polls the hub store and keeps the newest alerts in memory.

Every browser's SSE stream reads from this one feed, so the database sees one
poll per second however many operators watch. Events are found by the time the
hub stored them (``received_at``) with a look-back window, because two hub
workers may commit out of their timestamps' order; keys already seen are not
announced twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sync.dashboard.queries import HubReader
from sync.dashboard.views import (
    alert_for_chain,
    alert_for_event,
    alert_for_offline,
    alert_for_quarantine,
    edge_rows,
    iso,
    parse_ts,
)

log = logging.getLogger(__name__)


class AlertFeed:
    def __init__(
        self,
        reader: HubReader,
        *,
        poll_s: float = 1.0,
        keep: int = 500,
        lookback_s: float = 15.0,
        history_s: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reader = reader
        self.poll_s = poll_s
        self.lookback_s = lookback_s
        self.history_s = history_s
        self.clock = clock
        self._items: deque[tuple[int, dict[str, Any]]] = deque(maxlen=keep)
        self._next_id = 1
        self._seen: dict[str, float] = {}
        self._cursor: str | None = None
        self._last_quarantine = 0
        self._edge_states: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.polls = 0

    # ------------------------------------------------------------ reading

    def since(self, after_id: int, limit: int = 200) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return [(i, a) for i, a in self._items if i > after_id][:limit]

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)[-limit:]
        return [dict(a, id=i) for i, a in reversed(items)]

    @property
    def last_id(self) -> int:
        with self._lock:
            return self._next_id - 1

    # ------------------------------------------------------------ polling

    def start(self) -> AlertFeed:
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
                if self._failing:
                    self._failing = False
                    log.warning("dashboard: hub database readable again")
            except Exception as exc:  # the database may be restarting: say so once, keep trying
                if not self._failing:
                    self._failing = True
                    log.error("dashboard: cannot read the hub database: %s", exc)
            self._stop.wait(self.poll_s)

    def _add(self, alerts: list[dict[str, Any]]) -> None:
        now = self.clock()
        with self._lock:
            for alert in alerts:
                if alert["key"] in self._seen:
                    continue
                self._seen[alert["key"]] = now
                self._items.append((self._next_id, alert))
                self._next_id += 1
            horizon = now - max(3600.0, 4 * self.lookback_s)
            for key in [k for k, t in self._seen.items() if t < horizon and k.startswith("event:")]:
                del self._seen[key]

    def poll(self) -> None:
        """One round: new event alerts, new quarantined messages, chain breaks, edges gone offline."""
        now = self.clock()
        found: list[dict[str, Any]] = []
        if self._cursor is None:
            events = list(reversed(self.reader.recent_candidates(iso(now - self.history_s), 200)))
            quarantined = list(reversed(self.reader.quarantine_recent(50)))
            self._cursor = self.reader.max_received() or iso(now)
        else:
            start = parse_ts(self._cursor) or now
            events = self.reader.candidates_since(iso(start - self.lookback_s), 2000)
            quarantined = self.reader.quarantine_since(self._last_quarantine, 500)
        for e in events:
            alert = alert_for_event(e)
            if alert is not None:
                found.append(alert)
            if e["received_at"] > (self._cursor or ""):
                self._cursor = e["received_at"]
        for q in quarantined:
            found.append(alert_for_quarantine(q))
            self._last_quarantine = max(self._last_quarantine, int(q["id"]))
        for edge in edge_rows(self.reader.edges(), self.reader.statuses(), now):
            if edge["chain_error"]:
                found.append(alert_for_chain(edge, now))
            if edge["state"] == "retired":
                continue
            before = self._edge_states.get(edge["edge_id"])
            if edge["state"] in ("offline", "stale") and before in ("online",):
                found.append(alert_for_offline(edge, now))
            self._edge_states[edge["edge_id"]] = edge["state"]
        found.sort(key=lambda a: a["received_at"])
        self._add(found)
        self.polls += 1
