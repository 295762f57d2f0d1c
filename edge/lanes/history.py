"""Earlier crossings by plate or document, for the repeat-crossing (shuttle) rules. In memory, pure."""

from __future__ import annotations

import bisect
from collections.abc import Iterable


class CrossingHistory:
    """(kind, key) -> crossings [(ts, session_id)] sorted by time; one entry per session."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._by_key: dict[tuple[str, str], list[tuple[float, str]]] = {}

    def add(self, kind: str, key: str, ts: float, session_id: str) -> None:
        items = self._by_key.setdefault((kind, key), [])
        if any(sid == session_id for _, sid in items):
            return
        bisect.insort(items, (ts, session_id))

    def add_all(self, rows: Iterable[tuple[str, str, float, str]]) -> None:
        for kind, key, ts, sid in rows:
            self.add(kind, key, ts, sid)

    def earlier(self, kind: str, key: str, since: float, exclude: str) -> list[tuple[str, float]]:
        return [(sid, ts) for ts, sid in self._by_key.get((kind, key), []) if ts >= since and sid != exclude]

    def prune(self, now: float) -> None:
        cutoff = now - self.keep_s
        for k in list(self._by_key):
            kept = [x for x in self._by_key[k] if x[0] >= cutoff]
            if kept:
                self._by_key[k] = kept
            else:
                del self._by_key[k]
