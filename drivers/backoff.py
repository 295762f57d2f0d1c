"""Reconnect delays shared by every driver."""

from __future__ import annotations

import random


def full_jitter(attempts: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(maximum, initial * 2**(attempts-1))].

    Jitter keeps a lane's devices (and many edges after a broker restart) from
    retrying in lock-step.
    """
    ceiling = min(maximum, initial * 2 ** min(max(attempts, 1) - 1, 32))
    return rng.uniform(0.0, ceiling)
