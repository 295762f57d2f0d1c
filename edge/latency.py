"""A small thread-safe latency histogram (cumulative buckets, Prometheus style), no globals.

Each analysis worker owns one; the metrics collector reads them when scraped.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

# Seconds: a small model is ~5 ms per frame, tiled 2048-wide scans ~100 ms, a stalled CPU seconds.
BUCKETS: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class HistogramSnapshot:
    buckets: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, not cumulative; the last entry is +Inf
    count: int
    total: float

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class LatencyHistogram:
    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * (len(self.buckets) + 1)
        self._total = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        i = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            self._counts[i] += 1
            self._total += seconds

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            return HistogramSnapshot(self.buckets, tuple(self._counts), sum(self._counts), self._total)
