"""Protocol parsers by name: an explicit registry of pure modules.

Each module exports ``NAME``, ``parse(frame, *, today=None) -> Parsed``,
``FRAMING`` (its default framing on the wire), ``SAMPLES`` and ``BAD_SAMPLES``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> module path. Order is the order shown to technicians.
_MODULES = {
    "mrz": "drivers.serial.protocols.mrz",
    "barcode": "drivers.serial.protocols.barcode",
    "scale": "drivers.serial.protocols.scale",
    "plate": "drivers.serial.protocols.plate",
    "radiation": "drivers.serial.protocols.radiation",
    "rfid": "drivers.serial.protocols.rfid",
    "raw": "drivers.serial.protocols.raw",
}

NAMES: tuple[str, ...] = tuple(_MODULES)


def get(name: str) -> ModuleType:
    """The protocol module for ``name``; ``ValueError`` listing the known ones otherwise."""
    path = _MODULES.get(name)
    if path is None:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(path)
