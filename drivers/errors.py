"""One exception tree for every driver.

Adapters translate library errors (OpenCV, pyserial, OS errors) into these with
``raise ... from``, so callers catch our types only.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base class of every error raised by a driver."""


class InvalidDeviceURL(DriverError, ValueError):
    """A device URL that does not follow its scheme's grammar.

    The message always carries the grammar so the person editing the config
    sees what is accepted.
    """


class DeviceUnavailable(DriverError):
    """The device cannot be opened or was lost; the caller retries with backoff."""


class EndOfStream(DriverError):
    """A finite source (a video file without ``loop``) has no more frames."""
