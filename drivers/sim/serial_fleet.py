"""Simulated scanners that keep talking: one pty device per protocol, for the demo and soak runs.

Each ``SimulatedScanner`` replays its protocol's real wire samples at a steady
pace, split at random offsets like reads on a slow line, with an occasional
corrupted message or line noise so the invalid path is exercised too.
"""

from __future__ import annotations

import logging
import random
import threading
from pathlib import Path

from drivers.serial import protocols
from drivers.sim.serial_sim import PtyDevice, garbage, split_randomly

log = logging.getLogger(__name__)


class SimulatedScanner(threading.Thread):
    def __init__(
        self,
        protocol: str,
        link_path: Path,
        *,
        every_s: float = 2.0,
        seed: int = 0,
        bad_ratio: float = 0.1,
        samples: tuple[bytes, ...] | None = None,
    ) -> None:
        super().__init__(name=f"sim-{protocol}", daemon=True)
        module = protocols.get(protocol)
        self.protocol = protocol
        self.samples: tuple[bytes, ...] = samples or tuple(module.SAMPLES)
        self.bad: tuple[bytes, ...] = tuple(b for b, _ in getattr(module, "BAD_SAMPLES", ()))
        self.every_s = every_s
        self.bad_ratio = bad_ratio
        self.rng = random.Random(seed)
        self.device = PtyDevice(link_path)
        self.sent = 0
        self._stop_event = threading.Event()

    @property
    def link_path(self) -> Path:
        return self.device.link_path

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.every_s * self.rng.uniform(0.5, 1.5)):
                message = self._next_message()
                for piece in split_randomly(message, self.rng, max_pieces=3):
                    try:
                        self.device.write(piece, timeout=1.0)
                    except (TimeoutError, OSError):
                        break  # nobody is reading (runtime not up yet, or unplugged): try the next one
                else:
                    self.sent += 1
        finally:
            self.device.close()

    def _next_message(self) -> bytes:
        roll = self.rng.random()
        if self.bad and roll < self.bad_ratio:
            return self.rng.choice(self.bad)
        if roll < self.bad_ratio * 1.3:
            return garbage(self.rng.randint(1, 6), self.rng) + self.rng.choice(self.samples)
        return self.rng.choice(self.samples)
