"""``checkpoint devices``: serial ports on this box, their stable paths, and who uses them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from serial.tools import list_ports

from edge.config import EdgeConfig

BY_ID = Path("/dev/serial/by-id")


def _stable_paths(by_id: Path) -> dict[str, str]:
    """Real device node -> its /dev/serial/by-id link (stable across reboots and re-plugs)."""
    out: dict[str, str] = {}
    if by_id.is_dir():
        for link in sorted(by_id.iterdir()):
            out[os.path.realpath(link)] = str(link)
    return out


def list_devices(config: EdgeConfig | None = None, by_id: Path = BY_ID) -> list[dict[str, Any]]:
    stable = _stable_paths(by_id)
    rows: dict[str, dict[str, Any]] = {}
    for port in list_ports.comports():
        real = os.path.realpath(port.device)
        rows[real] = {
            "device": port.device,
            "stable_path": stable.get(real),
            "description": port.description,
            "hwid": port.hwid,
            "serves": None,
            "present": True,
        }
    for real, link in stable.items():
        rows.setdefault(
            real,
            {"device": real, "stable_path": link, "description": None, "hwid": None, "serves": None, "present": True},
        )
    if config is not None:
        for lane in config.lanes:
            for scanner in lane.scanners:
                if "://" in scanner.url:  # socket://, rfc2217://: not a local port
                    rows[scanner.url] = {
                        "device": scanner.url,
                        "stable_path": None,
                        "description": "network",
                        "hwid": None,
                        "serves": f"{lane.id}/{scanner.id}",
                        "present": None,
                    }
                    continue
                real = os.path.realpath(scanner.url)
                row = rows.get(real)
                if row is None:
                    row = rows[real] = {
                        "device": scanner.url,
                        "stable_path": None,
                        "description": None,
                        "hwid": None,
                        "serves": None,
                        "present": os.path.exists(real),
                    }
                row["serves"] = f"{lane.id}/{scanner.id} ({scanner.protocol})"
                if not scanner.url.startswith(str(by_id)) and row["stable_path"]:
                    row["hint"] = f"use {row['stable_path']} instead of {scanner.url}: it survives re-plugging"
    return sorted(rows.values(), key=lambda r: str(r["device"]))
