"""``record://`` for serial devices: the wrapped port, with every byte each way written to a folder.

Same grammar as the camera wrapper (``drivers/camera/record.py``)::

    record:///var/lib/checkpoint/rec/mrz-1#/dev/serial/by-id/usb-FTDI_...-if00-port0
    record:///var/lib/checkpoint/rec/scale-1?max_mb=100#socket://10.0.0.5:4001

The wrapped URL is opened with pyserial's ``serial_for_url`` and the line
settings as usual; reads, writes, errors and reconnects pass straight through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import serial

from drivers.errors import InvalidDeviceURL
from drivers.recording import SerialRecorder
from drivers.serial.transport import exclusive_if_local

GRAMMAR = "record:///ABSOLUTE/DIR[?max_mb=M]#INNER_PYSERIAL_URL (e.g. record:///srv/rec/mrz-1#/dev/ttyUSB0)"


def parse(url: str) -> tuple[Path, str, float | None]:
    """(folder, wrapped URL, max_mb) of a ``record://`` serial URL; ``InvalidDeviceURL`` if malformed."""
    parts = urlsplit(url)
    root = Path(unquote(parts.path))
    if parts.netloc or not root.is_absolute() or root == Path("/"):
        raise InvalidDeviceURL(f"{url}: the folder must be an absolute path; expected {GRAMMAR}")
    if not parts.fragment:
        raise InvalidDeviceURL(f"{url}: no device to record after '#'; expected {GRAMMAR}")
    max_mb = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "max_mb":
            raise InvalidDeviceURL(f"{url}: unknown option {key!r}; expected {GRAMMAR}")
        try:
            max_mb = float(value)
        except ValueError:
            raise InvalidDeviceURL(f"{url}: max_mb must be a number; expected {GRAMMAR}") from None
    return root, parts.fragment, max_mb


class RecordingPort:
    """The part of pyserial's port that the reader uses, recording as it goes."""

    def __init__(self, inner: Any, recorder: SerialRecorder) -> None:
        self.inner = inner
        self.recorder = recorder
        recorder.log("open")

    @property
    def in_waiting(self) -> int:
        return int(self.inner.in_waiting)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self.inner.read(size))
        if data:
            self.recorder.log("rx", data)
        return data

    def write(self, data: bytes) -> int | None:
        self.recorder.log("tx", bytes(data))
        result: int | None = self.inner.write(data)
        return result

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.recorder.close()


def open_recording(url: str, meta: dict[str, Any] | None, **kwargs: Any) -> RecordingPort:
    root, inner_url, max_mb = parse(url)
    if inner_url.startswith("record:"):
        raise InvalidDeviceURL(f"{url}: record:// inside record://; expected {GRAMMAR}")
    port = serial.serial_for_url(inner_url, **exclusive_if_local(inner_url, kwargs))
    try:
        recorder = SerialRecorder(root, inner_url, meta, max_mb)
    except BaseException:
        port.close()
        raise
    return RecordingPort(port, recorder)
