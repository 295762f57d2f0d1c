"""Doctor: each camera opens and yields frames (fps measured); each serial device talks and parses.

A serial port held by another process (the running edge, a terminal program) is
not opened: bytes read here would be missing from the edge's record. It is found
two ways: pyserial's exclusive open (``flock``) fails, or a process under
``/proc`` has the device open.
"""

from __future__ import annotations

import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import serial

from drivers.camera.registry import CameraContext, create_camera, redact_url
from drivers.errors import DeviceUnavailable, DriverError, EndOfStream
from drivers.serial.decoder import Decoder
from drivers.serial.reading import Reading
from edge.config import CameraConfig, EdgeConfig, ScannerConfig
from edge.doctor import DoctorOptions, Job, Row, bounded

STOP_EDGE = "stop the edge first: `sudo systemctl stop checkpoint-edge`, run doctor, then start it again"


# ---------------------------------------------------------------- cameras


def camera_jobs(cfg: EdgeConfig, options: DoctorOptions) -> list[Job]:
    jobs = []
    for lane in cfg.lanes:
        for cam in lane.cameras:
            limit = options.timeout_s + options.fps_window_s + 5.0
            hangs = f"the camera backend hangs on {redact_url(cam.url)}: check the address and the network"
            jobs.append(bounded(f"camera {cam.id}", limit, partial(check_camera, cam, options), hangs))
    return jobs


def check_camera(cam: CameraConfig, options: DoctorOptions) -> Row:
    name = f"camera {cam.id}"
    url = redact_url(cam.url)
    remedy = camera_remedy(cam.url)
    parts = urlsplit(cam.url)
    if parts.scheme.lower() == "usb" and parts.netloc.isdigit():
        holders = port_holders(f"/dev/video{parts.netloc}", options.proc_dir)
        if holders:  # a V4L2 device serves one reader: opening it here would fail or take it from the edge
            return Row(name, "FAIL", f"{url}: /dev/video{parts.netloc} in use by {', '.join(holders)}", STOP_EDGE,
                       {"holders": holders})
    # A scratch state folder: a folder:// camera must not journal scans the edge has not stored yet.
    with tempfile.TemporaryDirectory(prefix="checkpoint-doctor-") as state:
        camera = create_camera(cam.url, CameraContext(state_dir=Path(state)))
        try:
            camera.open()
        except DriverError as exc:
            text = str(exc).removeprefix(f"{url}: ")
            return Row(name, "FAIL", f"{url}: cannot open: {text}", remedy)
        try:
            return _measure(name, url, camera, options, remedy, quiet_ok=cam.url.startswith("folder:"))
        finally:
            camera.close()


def camera_remedy(url: str) -> str:
    scheme = url.partition(":")[0].lower()
    if scheme == "folder":
        return ("the scanner's export folder must exist and be readable by the edge's user: check the network share "
                "is mounted (`findmnt`) and the path in the URL")
    if scheme == "file":
        return "check the video file's path and that the edge's user can read it"
    if scheme == "usb":
        return ("plug the camera in and check `ls -l /dev/video*`; the edge's user must be in the video group; "
                "the number in usb://N is the /dev/videoN index")
    return (f"check that {redact_url(url)} answers from this box: power, cable, IP address, port, path, and the "
            "camera account's user and password (open the same URL in VLC or ffprobe)")


def _measure(name: str, url: str, camera: Any, options: DoctorOptions, remedy: str, *, quiet_ok: bool) -> Row:
    deadline = time.monotonic() + options.timeout_s
    stamps: list[float] = []
    first = None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if len(stamps) > 1 and now - stamps[0] >= options.fps_window_s:
                break  # a rate needs two frames: a slow source (a scan every few seconds) gets until the deadline
            frame = camera.read(timeout=0.5)
            if frame is not None:
                stamps.append(time.monotonic())
                first = first or frame
    except EndOfStream:
        pass  # a finite file: what it gave is enough
    except DeviceUnavailable as exc:
        if not stamps:
            return Row(name, "FAIL", f"{url}: opened, then lost: {exc}", remedy)
    if first is None:
        if quiet_ok:
            return Row(name, "WARN", f"{url}: folder readable, no new scan in {options.timeout_s:g} s",
                       "normal between vehicles; otherwise check the scanner workstation's export path")
        return Row(name, "FAIL", f"{url}: opened but gave no frame in {options.timeout_s:g} s", remedy)
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else None
    size = f"{first.width}x{first.height}"
    rate = f"{fps:.1f} fps over {stamps[-1] - stamps[0]:.1f} s" if fps is not None else "one frame (fps not measured)"
    data = {"url": url, "width": first.width, "height": first.height, "frames": len(stamps),
            "fps": None if fps is None else round(fps, 2)}
    return Row(name, "OK", f"{url}: {size} frames, {rate}", data=data)


# ---------------------------------------------------------------- serial devices


def serial_jobs(cfg: EdgeConfig, options: DoctorOptions) -> list[Job]:
    jobs = []
    for lane in cfg.lanes:
        for dev in lane.scanners:
            jobs.append(bounded(f"serial {dev.id}", options.timeout_s + 5.0,
                                partial(check_serial, dev, options),
                                f"opening {dev.url} hangs: check the serial server / adapter"))
    return jobs


def port_holders(device: str, proc_dir: Path = Path("/proc")) -> list[str]:
    """``pid (command)`` of every other process with ``device`` open (those this user may see)."""
    try:
        target = os.path.realpath(device)
    except OSError:
        return []
    holders = []
    me = os.getpid()
    for entry in proc_dir.iterdir() if proc_dir.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # gone, or another user's process
        if target.startswith("/dev/pts/") and _owns_master(entry, fds, target.rpartition("/")[2]):
            continue  # the other end of a pty (a simulator, socat, a serial-over-IP daemon) is the device itself
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    holders.append(f"pid {entry.name} ({cmd[:80] or '?'})")
                    break
            except OSError:
                continue
    return holders


def _owns_master(proc: Path, fds: list[Path], index: str) -> bool:
    """Whether ``proc`` holds the master side (``/dev/ptmx``, ``tty-index``) of pty number ``index``."""
    for fd in fds:
        try:
            if os.readlink(fd) != "/dev/ptmx":
                continue
            info = (proc / "fdinfo" / fd.name).read_text()
        except OSError:
            continue
        if f"tty-index:\t{index}\n" in info:
            return True
    return False


def _is_local(url: str) -> bool:
    return "://" not in url


def check_serial(dev: ScannerConfig, options: DoctorOptions) -> Row:
    name = f"serial {dev.id}"
    where = f"{dev.url} ({dev.protocol})"
    if _is_local(dev.url):
        if not os.path.exists(dev.url):
            return Row(name, "FAIL", f"{dev.url}: no such device (unplugged?)",
                       "plug the adapter in and check its cable; `checkpoint devices --config FILE` lists the ports "
                       "this box sees and their stable /dev/serial/by-id names")
        holders = port_holders(dev.url, options.proc_dir)
        if holders:
            return Row(name, "FAIL", f"{dev.url}: in use by {', '.join(holders)}; not opened, so no bytes are taken "
                       "from it", STOP_EDGE, {"holders": holders})
    extra: dict[str, Any] = {"exclusive": True} if _is_local(dev.url) else {}
    try:
        port = serial.serial_for_url(dev.url, timeout=0.1, write_timeout=1.0, **dev.serial.model_dump(), **extra)
    except (serial.SerialException, OSError, ValueError) as exc:
        text = str(exc)
        if "lock" in text.lower() or "resource temporarily unavailable" in text.lower():
            return Row(name, "FAIL", f"{dev.url}: locked by another process ({text})", STOP_EDGE)
        if "ermission" in text:
            return Row(name, "FAIL", f"{dev.url}: permission denied",
                       "add the user to the dialout group (`sudo usermod -aG dialout $USER`, log in again) or run "
                       "doctor with sudo", {"error": text})
        return Row(name, "FAIL", f"{where}: cannot open: {text}",
                   "check the URL, the adapter or the serial server's address and port")
    try:
        return _listen(name, where, port, dev, options)
    finally:
        try:
            port.close()
        except (serial.SerialException, OSError):
            pass


def _listen(name: str, where: str, port: Any, dev: ScannerConfig, options: DoctorOptions) -> Row:
    decoder = Decoder(dev.id, dev.protocol, dev.framing)
    poll = dev.poll_bytes()
    readings: list[Reading] = []
    received = 0
    started = time.monotonic()
    deadline = started + options.timeout_s
    next_poll = started
    last_data = started
    try:
        while time.monotonic() < deadline and not any(r.valid for r in readings):
            if poll is not None and time.monotonic() >= next_poll:
                port.write(poll)
                next_poll = time.monotonic() + dev.poll_every_s
            data = port.read(max(1, getattr(port, "in_waiting", 0) or 1))
            now = time.monotonic()
            if data:
                received += len(data)
                last_data = now
                readings += decoder.feed(data, time.time())
            elif received and now - last_data >= dev.idle_flush_ms / 1000:
                readings += decoder.flush(time.time())
                last_data = now
    except (serial.SerialException, OSError) as exc:
        return Row(name, "FAIL", f"{where}: lost while listening: {exc}", "check the cable and the adapter")
    readings += decoder.flush(time.time())
    took = time.monotonic() - started
    valid = [r for r in readings if r.valid]
    data = {"bytes": received, "readings": len(readings), "valid": len(valid), "seconds": round(took, 2),
            "polled": poll is not None}
    asked = " after polling" if poll is not None else ""
    if received == 0:
        remedy = ("the device sends nothing: check it is powered and configured to send, the cable (TX/RX crossed?), "
                  "and the baud rate") if _is_local(dev.url) else (
                  "the serial server accepted the connection but relays nothing: check the device behind it, the "
                  "server's port settings (baud, parity) and which device is on which port")
        if poll is not None:
            remedy += f"; it is polled with {dev.poll!r}: check the device expects that request"
        return Row(name, "FAIL", f"{where}: no bytes in {options.timeout_s:g} s{asked}", remedy, data)
    if not valid:
        sample = readings[0].error if readings else "no complete frame"
        data["first_error"] = sample
        return Row(name, "FAIL", f"{where}: {received} bytes{asked} but none parse ({len(readings)} reading(s), "
                   f"first: {sample})",
                   f"wrong line settings or protocol: check serial.baudrate/bytesize/parity ({_line(dev)}) and "
                   f"protocol '{dev.protocol}' against the device's manual; `checkpoint decode {dev.protocol}` "
                   "decodes a capture", data)
    first = valid[0]
    what = f", first: {first.kind}" if first.kind else ""
    return Row(name, "OK", f"{where}: {received} bytes{asked} in {took:.1f} s, {len(valid)} valid reading(s)"
               f"{what}", data=data)


def _line(dev: ScannerConfig) -> str:
    s = dev.serial
    return f"{s.baudrate} {s.bytesize}{s.parity}{s.stopbits:g}"
