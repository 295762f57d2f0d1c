"""Serial transport: a device is a pyserial URL, read by one thread.

``/dev/serial/by-id/...``, ``/dev/ttyUSB0``, ``socket://host:port`` (serial-over-
Ethernet servers), ``rfc2217://host:port`` and ``loop://`` all go through
``serial.serial_for_url``. Unplug and replug (the path disappears and returns,
EIO, "readiness to read but returned no data") are survived with jittered
exponential backoff, logged once each way and shown in ``status``. Bytes that
were buffered when the device vanished come out as a partial Reading, never lost.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import serial
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.backoff import full_jitter
from drivers.serial.decoder import Decoder
from drivers.serial.reading import Reading

log = logging.getLogger(__name__)

State = Literal["starting", "up", "down", "stopped"]


class SerialSettings(BaseModel):
    """Line settings; ignored by transports that have none (socket://, loop://)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baudrate: int = Field(9600, gt=0, description="Baud rate, e.g. 9600 or 115200.")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="Data bits.")
    parity: Literal["N", "E", "O", "M", "S"] = Field("N", description="Parity: N, E, O, M or S.")
    stopbits: float = Field(1, description="Stop bits: 1, 1.5 or 2.")
    xonxoff: bool = Field(False, description="Software flow control.")
    rtscts: bool = Field(False, description="RTS/CTS hardware flow control.")
    dsrdtr: bool = Field(False, description="DSR/DTR hardware flow control.")

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stopbits must be 1, 1.5 or 2")
        return value


Opener = Callable[..., Any]
# Wrapper schemes around any pyserial URL: scheme -> opener(url, meta, **serial_kwargs).
WRAPPERS: dict[str, Opener] = {}


def register_wrapper(scheme: str, opener: Opener) -> None:
    if scheme in WRAPPERS:
        raise RuntimeError(f"serial wrapper scheme {scheme!r} registered twice")
    WRAPPERS[scheme] = opener


def open_port(url: str, *, meta: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Open ``url`` with pyserial, or through a registered wrapper (``record://...#URL``)."""
    if "record" not in WRAPPERS:
        from drivers.serial import record

        WRAPPERS.setdefault("record", record.open_recording)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    wrapper = WRAPPERS.get(scheme)
    if wrapper is not None:
        return wrapper(url, meta, **kwargs)
    return serial.serial_for_url(url, **exclusive_if_local(url, kwargs))


def exclusive_if_local(url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A local port is opened with an exclusive lock (flock): two readers would each get part of the bytes."""
    if "://" in url:
        return kwargs
    return {"exclusive": True, **kwargs}


@dataclasses.dataclass
class SerialStatus:
    state: State
    last_error: str | None
    since: float
    bytes: int = 0
    readings: int = 0
    invalid: int = 0
    reconnects: int = 0
    retries: int = 0


class SerialReader(threading.Thread):
    """Reads ``url`` forever, hands every Reading to ``sink``; survives unplug/replug."""

    def __init__(
        self,
        url: str,
        decoder: Decoder,
        sink: Callable[[Reading], None],
        *,
        settings: SerialSettings | None = None,
        idle_flush_s: float = 0.5,
        poll: bytes | None = None,
        poll_every_s: float = 1.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name=f"serial-{decoder.device_id}", daemon=True)
        self.url = url
        self.decoder = decoder
        self.sink = sink
        self.settings = settings or SerialSettings()
        self.idle_flush_s = idle_flush_s
        self.poll = poll
        self.poll_every_s = poll_every_s
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._clock = clock
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._port: Any = None
        self._status = SerialStatus("starting", None, clock())

    @property
    def device_id(self) -> str:
        return self.decoder.device_id

    @property
    def status(self) -> SerialStatus:
        with self._lock:
            return dataclasses.replace(self._status)

    def stop(self) -> None:
        self._stop_event.set()

    # ------------------------------------------------------------ thread

    def run(self) -> None:
        down = False
        attempts = 0
        try:
            while not self._stop_event.is_set():
                try:
                    if down:
                        attempts += 1
                    self._port = open_port(
                        self.url,
                        meta={"device_id": self.device_id, "protocol": self.decoder.protocol},
                        timeout=0.1,
                        write_timeout=1.0,
                        **self.settings.model_dump(),
                    )
                    if down:
                        log.info("serial device %s recovered after %d attempts", self.device_id, attempts)
                        down, attempts = False, 0
                        with self._lock:
                            self._status.reconnects += 1
                    self._set_state("up", None)
                    self._pump()
                except (serial.SerialException, OSError, ValueError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                except Exception as exc:  # a driver bug must not end the thread silently
                    log.exception("serial device %s: unexpected error", self.device_id)
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    continue  # _pump returned: stopping
                self._emit(self.decoder.flush(self._clock()))
                self._close_port()
                if self._stop_event.is_set():
                    break
                if down:
                    with self._lock:
                        self._status.retries += 1
                        self._status.last_error = error
                else:
                    down = True
                    log.warning("serial device %s (%s) down: %s", self.device_id, self.url, error)
                    self._set_state("down", error)
                self._stop_event.wait(self._backoff(attempts + 1))
        finally:
            self._emit(self.decoder.close(self._clock()))
            self._close_port()
            self._set_state("stopped", self.status.last_error)

    def _pump(self) -> None:
        port = self._port
        last_data = time.monotonic()
        next_poll = time.monotonic()
        while not self._stop_event.is_set():
            if self.poll is not None and time.monotonic() >= next_poll:
                port.write(self.poll)
                next_poll = time.monotonic() + self.poll_every_s
            data = port.read(max(1, getattr(port, "in_waiting", 0) or 1))
            now = time.monotonic()
            if data:
                last_data = now
                with self._lock:
                    self._status.bytes += len(data)
                self._emit(self.decoder.feed(data, self._clock()))
            elif now - last_data >= self.idle_flush_s:
                # The device went quiet mid-frame: keep what it sent as a partial reading.
                self._emit(self.decoder.flush(self._clock()))
                last_data = now

    def _emit(self, readings: list[Reading]) -> None:
        for reading in readings:
            with self._lock:
                self._status.readings += 1
                self._status.invalid += 0 if reading.valid else 1
            try:
                self.sink(reading)
            except Exception:
                log.exception("serial device %s: reading could not be handed on", self.device_id)

    def _backoff(self, attempts: int) -> float:
        return full_jitter(attempts, self._backoff_initial, self._backoff_max, self._rng)

    def _set_state(self, state: State, error: str | None) -> None:
        with self._lock:
            if state != self._status.state:
                self._status.state = state
                self._status.since = self._clock()
            self._status.last_error = error

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                log.debug("serial device %s: close failed", self.device_id, exc_info=True)
