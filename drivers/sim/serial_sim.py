"""Simulated serial devices on real ptys, plus fault-injection helpers for byte streams.

``PtyDevice`` creates a pseudo-terminal pair and a stable symlink to its slave end (like
``/dev/serial/by-id/...``). The program under test opens the link with pyserial, exactly as
it opens a USB adapter, and never learns the device is simulated. The test writes the
device's bytes to the master end (``write``, or ``play`` a timed script in a thread) and reads
what the program sent (``read``, for polled devices such as MT-SICS ``S\\r\\n``).

``unplug()`` behaves like pulling a USB adapter: the pty is destroyed and the link removed.
What a pyserial reader then sees (pyserial 3.5, Linux): ``read()`` raises
``serial.SerialException("device reports readiness to read but returned no data (device
disconnected or multiple access on port?)")``, ``write()`` raises
``SerialException("write failed: [Errno 5] Input/output error")``, ``in_waiting`` raises a
plain ``OSError(5, "Input/output error")``; bytes not yet read are lost. ``replug()`` makes a
new pty behind the same link, which the reader must reopen. Bytes written before the reader
opens the port are discarded by pyserial's ``open()`` (it flushes the input buffer).

Both ends are set raw: a fresh pty echoes and turns CR into LF, which corrupts binary
protocols.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import threading
import time
import tty
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

Script = Sequence[tuple[float, bytes]]
"""Steps of (delay in seconds before the step, bytes the device sends)."""


class PtyDevice:
    """A serial device simulated on a pty; the program under test opens ``link_path``."""

    def __init__(self, link_path: str | os.PathLike[str]) -> None:
        self.link_path = Path(link_path)
        self._lock = threading.Lock()  # guards the fds against unplug() during write()/read()
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._player: threading.Thread | None = None
        self._open()

    # ------------------------------------------------------------ lifecycle

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link_path.with_name(self.link_path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link_path)  # the link never points nowhere while it exists
        with self._lock:
            # We keep the slave open: with no slave fd open the master reads EIO, and the
            # tty settings are kept between the program's reopenings.
            self._master, self._slave = master, slave
        log.debug("pty device %s -> %s", self.link_path, os.ttyname(slave))

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def device_name(self) -> str | None:
        """The pty slave the link points at (``/dev/pts/N``), or None when unplugged."""
        with self._lock:
            return None if self._slave is None else os.ttyname(self._slave)

    def unplug(self) -> None:
        """Pull the adapter: stop the script, destroy the pty, remove the link."""
        self.stop()
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None
        with contextlib.suppress(FileNotFoundError):
            self.link_path.unlink()

    def replug(self) -> None:
        """Plug back in: a new pty behind the same link (the program must reopen it)."""
        if self.plugged:
            self.unplug()
        self._open()

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> PtyDevice:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------ bytes

    def write(self, data: bytes, timeout: float = 2.0) -> None:
        """Send ``data`` as the device; raises ``OSError`` when unplugged, ``TimeoutError`` if nobody reads."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            with self._lock:
                if self._master is None:
                    raise OSError("pty device is unplugged")
                try:
                    view = view[os.write(self._master, view) :]
                    continue
                except BlockingIOError:
                    master = self._master
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.link_path}: {len(view)} bytes not taken by the reader")
            with contextlib.suppress(OSError, ValueError):  # unplugged meanwhile: the loop raises
                select.select([], [master], [], min(left, 0.05))

    def read(self, timeout: float = 1.0, until: bytes | None = None) -> bytes:
        """Bytes the program wrote to the device: whatever arrives within ``timeout``.

        Returns as soon as something arrived, or, with ``until``, once the bytes end with it.
        """
        out = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                master = self._master
                if master is None:
                    raise OSError("pty device is unplugged")
                try:
                    out += os.read(master, 4096)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:  # EIO: no slave open (cannot happen while we hold it)
                    pass
            if out and (until is None or out.endswith(until)):
                return bytes(out)
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(out)
            with contextlib.suppress(OSError, ValueError):
                select.select([master], [], [], min(left, 0.05))

    def play(self, script: Script) -> None:
        """Send each step after its delay, in a background thread; ``stop()`` ends it promptly."""
        self.stop()
        self._stop = stop = threading.Event()
        self._player = threading.Thread(target=self._play, args=(list(script), stop), daemon=True)
        self._player.start()

    def _play(self, script: list[tuple[float, bytes]], stop: threading.Event) -> None:
        for delay, data in script:
            if stop.wait(delay):
                return
            try:
                self.write(data)
            except (OSError, TimeoutError) as exc:
                log.debug("pty device %s stopped playing: %s", self.link_path, exc)
                return

    def wait_played(self, timeout: float | None = None) -> bool:
        """Wait for the script to finish; True when it did."""
        player = self._player
        if player is None:
            return True
        player.join(timeout)
        return not player.is_alive()

    def stop(self) -> None:
        self._stop.set()
        player = self._player
        if player is not None and player is not threading.current_thread():
            player.join(2.0)
        self._player = None


# ---------------------------------------------------------------- fault injection (pure)


def garbage(n: int, rng: random.Random) -> bytes:
    """``n`` random bytes, any value (framing bytes included)."""
    return bytes(rng.randrange(256) for _ in range(n))


def split(data: bytes, offsets: Iterable[int]) -> list[bytes]:
    """``data`` cut at ``offsets`` (sorted, clipped, duplicates dropped); pieces may be empty only if data is."""
    cuts = sorted({min(max(o, 0), len(data)) for o in offsets} - {0, len(data)})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def split_randomly(data: bytes, rng: random.Random, max_pieces: int = 8) -> list[bytes]:
    """``data`` in up to ``max_pieces`` pieces cut at random offsets, like reads on a slow line."""
    if len(data) < 2:
        return [data]
    return split(data, rng.sample(range(1, len(data)), min(max_pieces, len(data)) - 1))


def with_garbage(frames: Iterable[bytes], rng: random.Random, max_garbage: int = 8) -> bytes:
    """The frames with 0..``max_garbage`` random bytes before each (line noise, a device booting)."""
    return b"".join(garbage(rng.randint(0, max_garbage), rng) + frame for frame in frames)


def burst(messages: Iterable[bytes], n: int) -> bytes:
    """The messages repeated ``n`` times back to back: a device emptying its buffer at once."""
    return b"".join(messages) * n


def script(pieces: Iterable[bytes], delay: float = 0.0) -> list[tuple[float, bytes]]:
    """A ``play()`` script sending each piece after ``delay`` seconds."""
    return [(delay, piece) for piece in pieces]
