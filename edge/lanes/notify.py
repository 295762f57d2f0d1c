"""Notifications to subscribers (the terminal's SSE streams): a bounded queue per subscriber.

Publishing never blocks the lane: a subscriber that does not keep up loses its oldest
notifications (it reloads the page state on the next one anyway) and the loss is counted.
"""

from __future__ import annotations

import queue
import threading
from typing import Any


class Subscription:
    """One subscriber's queue of ``{"kind", "lane_id", "session_id"}`` notifications."""

    def __init__(self, hub: Notifier, maxsize: int = 256) -> None:
        self._hub = hub
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=maxsize)
        self.dropped = 0
        self.closed = False

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next notification, or ``None`` after ``timeout`` seconds (or once closed)."""
        if self.closed:
            return None
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True
        self._hub._remove(self)

    def _put(self, item: dict[str, Any]) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        with self._lock:
            self._subs.append(sub)
        return sub

    def publish(self, kind: str, lane_id: str | None, session_id: str | None) -> None:
        item = {"kind": kind, "lane_id": lane_id, "session_id": session_id}
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub._put(dict(item))

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._subs)
