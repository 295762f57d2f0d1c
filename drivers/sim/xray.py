"""Synthetic transmission X-ray scans of vehicles at a border checkpoint (side view).

Pure: no I/O, no threads. ``render_scene(seed)`` builds an attenuation map ``mu`` by
*adding* the line integral of every part (body walls, frame, wheels, engine, cargo,
concealed objects), then images it the way a line scanner does: ``I0 * exp(-mu)``,
blurred by the detector, with per-row gain, per-column (source pulse) stripes and photon
noise. Air is bright (about 240), dense steel nearly black.

Parts are drawn in metres (x along the vehicle from its front, y up from the road) and
mapped to pixels by one affine matrix, so height and width never mix and any image size
works. The seed feeds separate random streams (vehicle, cargo, concealed objects, noise), so
the same seed with ``conceal_prob=0`` gives the same scan without the objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import cv2
import numpy as np

from drivers.camera.base import GroundTruth

CLASSES = ("weapon", "ammunition", "drug_package", "person", "bottle", "cigarettes")
VEHICLES = ("truck", "van", "container", "car")

Rng = np.random.Generator
Zone = tuple[float, float, float, float]  # x0, y0, x1, y1 in metres

_SHIFT = 4  # cv2 sub-pixel bits: coordinates are multiplied by 16
_MIN_OBJECT_PX = 10.0  # a concealed object is never drawn smaller than this (longest side)
_MIN_CONTRAST = 3.0  # mean grey-level drop below which a hidden object counts as invisible
_MIN_CLUTTER_RATIO = 0.5  # ... or below this fraction of the grey-level spread (clutter and noise) behind it
_NOMINAL_I0 = 240.0  # air, in grey levels (the source intensity varies 236..246 per scan)
_NOISE_GAIN, _NOISE_FLOOR = 0.08, 0.3  # photon noise variance: gain * signal + floor (grey levels squared)


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered scan: ``image`` is ``H x W`` uint8; ``truth`` boxes are in its pixels."""

    image: np.ndarray
    truth: tuple[GroundTruth, ...]
    vehicle: str
    seed: int


# ---------------------------------------------------------------- drawing primitives


@dataclass(slots=True)
class _Op:
    """One shape: ``fill`` a polygon set or ``line`` (stroke) it, adding ``value`` to mu."""

    kind: str
    polys: list[np.ndarray]
    value: float
    thick: float = 0.0  # stroke width in metres (local units)
    closed: bool = True
    tex: float = 0.0  # amplitude of the multiplicative material texture


def _fill(polys: np.ndarray | list[np.ndarray], value: float, tex: float = 0.0) -> _Op:
    return _Op("fill", polys if isinstance(polys, list) else [polys], value, tex=tex)


def _line(
    polys: np.ndarray | list[np.ndarray], value: float, thick: float, closed: bool = False, tex: float = 0.0
) -> _Op:
    return _Op("line", polys if isinstance(polys, list) else [polys], value, thick, closed, tex)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


_CIRCLES: dict[int, np.ndarray] = {}


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> np.ndarray:
    unit = _CIRCLES.get(n)
    if unit is None:
        t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
        unit = _CIRCLES[n] = np.column_stack((np.cos(t), np.sin(t)))
    return unit * (rx, ry) + (cx, cy)


def _rrect(x0: float, y0: float, x1: float, y1: float, r: float) -> np.ndarray:
    """Rectangle with chamfered corners (rounded enough once blurred)."""
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    return np.array(
        [[x0 + r, y0], [x1 - r, y0], [x1, y0 + r], [x1, y1 - r], [x1 - r, y1], [x0 + r, y1], [x0, y1 - r], [x0, y0 + r]]
    )


def _seg(*pts: tuple[float, float]) -> np.ndarray:
    return np.array(pts, np.float64)


class _Canvas:
    """The attenuation map and the metres-to-pixels mapping of one scene."""

    def __init__(self, height: int, width: int, base: np.ndarray, tex: np.ndarray) -> None:
        self.mu = np.zeros((height, width), np.float32)
        self.h, self.w = height, width
        self.base = base  # 2x3 affine: vehicle metres -> pixels
        self.tex = tex  # smooth noise, zero mean, for material texture
        self.ppm = float(base[0, 0])  # pixels per metre

    def draw(self, ops: list[_Op], m: np.ndarray | None = None) -> None:
        """Add each op to mu, each in its own small region of interest."""
        for op in ops:
            self._stamp([op], self.base if m is None else m)

    def stamp(self, ops: list[_Op], m: np.ndarray) -> tuple[int, int, np.ndarray] | None:
        """Add a group of ops and return ``(y0, x0, patch)``: exactly what was added."""
        return self._stamp(ops, m)

    def _stamp(self, ops: list[_Op], m: np.ndarray) -> tuple[int, int, np.ndarray] | None:
        ops = [op for op in ops if op.polys]
        if not ops:
            return None
        lin, off = m[:, :2], m[:, 2]
        k = math.sqrt(abs(float(lin[0, 0] * lin[1, 1] - lin[0, 1] * lin[1, 0])))  # local unit -> pixels
        pix = [[p @ lin.T + off for p in op.polys] for op in ops]
        allp = np.concatenate([q for pp in pix for q in pp])
        pad = 2 + max(op.thick for op in ops) * k / 2
        x0, y0 = np.floor(allp.min(axis=0) - pad).astype(int)
        x1, y1 = np.ceil(allp.max(axis=0) + pad).astype(int)
        x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), self.w), min(int(y1), self.h)
        if x1 <= x0 or y1 <= y0:
            return None
        patch = np.zeros((y1 - y0, x1 - x0), np.float32)
        tmp = np.empty_like(patch) if len(ops) > 1 else patch
        origin = np.array([x0, y0], np.float64)
        for op, pp in zip(ops, pix, strict=True):
            if tmp is not patch:
                tmp.fill(0.0)
            pts = [np.round((q - origin) * (1 << _SHIFT)).astype(np.int32) for q in pp]
            if op.kind == "fill":
                cv2.fillPoly(tmp, pts, op.value, cv2.LINE_8, _SHIFT)
            else:
                t = op.thick * k
                ti = max(1, round(t))
                # a stroke thinner than a pixel keeps its integrated attenuation
                cv2.polylines(tmp, pts, op.closed, op.value * t / ti if t < 1 else op.value, ti, cv2.LINE_8, _SHIFT)
            if op.tex:
                tmp *= 1.0 + op.tex * self.tex[y0:y1, x0:x1]
            if tmp is not patch:
                patch += tmp
        self.mu[y0:y1, x0:x1] += patch
        return y0, x0, patch


# ---------------------------------------------------------------- vehicle parts


@dataclass
class _Layout:
    length: float
    height: float
    ops: list[_Op] = field(default_factory=list)
    cargo: list[Zone] = field(default_factory=list)  # filled with goods
    hides: list[tuple[Zone, tuple[str, ...]]] = field(default_factory=list)  # where contraband goes


_SMALL = ("weapon", "ammunition", "drug_package", "bottle", "cigarettes")
_FLAT = ("weapon", "drug_package", "cigarettes")


def _wheel(ops: list[_Op], cx: float, r: float, dual: bool = False) -> None:
    """Tyre, rim, hub and axle; left and right wheels superimpose in a side view."""
    k = 1.6 if dual else 1.0
    ops.append(_line(_ellipse(cx, r, r * 0.82, r * 0.82, 32), 0.55 * k, r * 0.34, closed=True, tex=0.15))
    ops.append(_fill(_ellipse(cx, r, r * 0.62, r * 0.62, 28), 0.45 * k))
    ops.append(_line(_ellipse(cx, r, r * 0.62, r * 0.62, 28), 0.9 * k, r * 0.06, closed=True))
    ops.append(_fill(_ellipse(cx, r, r * 0.26, r * 0.26, 16), 1.3 * k))
    ops.append(_fill(_ellipse(cx, r, r * 0.1, r * 0.1, 12), 1.5))
    for a in np.linspace(0, 2 * math.pi, 6, endpoint=False):  # wheel studs
        sx, sy = cx + 0.4 * r * math.cos(a), r + 0.4 * r * math.sin(a)
        ops.append(_fill(_ellipse(sx, sy, r * 0.05, r * 0.05, 8), 0.8))


def _engine(rng: Rng, ops: list[_Op], x0: float, y0: float, x1: float, y1: float) -> None:
    """Engine block: very dense, with lighter cylinder bores and a crankshaft line."""
    ops.append(_fill(_rrect(x0, y0, x1, y1, 0.08), rng.uniform(2.0, 2.6), tex=0.2))
    n = int(rng.integers(4, 7))
    w = (x1 - x0) / n
    for i in range(n):
        cx = x0 + (i + 0.5) * w
        ops.append(_fill(_rrect(cx - 0.3 * w, y0 + 0.45 * (y1 - y0), cx + 0.3 * w, y1 - 0.08, 0.02), -0.7))
    ops.append(_line(_seg((x0 + 0.05, y0 + 0.25 * (y1 - y0)), (x1 - 0.05, y0 + 0.25 * (y1 - y0))), 1.0, 0.06))
    ops.append(_fill(_rrect(x1, y0 + 0.1, x1 + 0.5 * (x1 - x0), y0 + 0.6 * (y1 - y0), 0.05), 1.6))  # gearbox
    ops.append(_fill(_ellipse(x0 + 0.2, y1 + 0.05, 0.12, 0.1), 1.2))  # turbo / alternator


def _chassis(ops: list[_Op], x0: float, x1: float, y: float, h: float) -> None:
    """Two longitudinal rails: thin webs, dense flanges at top and bottom."""
    ops.append(_fill(_rect(x0, y, x1, y + h), 0.35))
    ops.append(_line(_seg((x0, y), (x1, y)), 1.3, 0.035))
    ops.append(_line(_seg((x0, y + h), (x1, y + h)), 1.3, 0.035))


def _fuel_tank(ops: list[_Op], x0: float, y0: float, x1: float, y1: float) -> Zone:
    ops.append(_fill(_rrect(x0, y0, x1, y1, 0.1), 0.75, tex=0.05))
    ops.append(_line(_rrect(x0, y0, x1, y1, 0.1), 0.5, 0.02, closed=True))
    ops.append(_line(_seg((x0 + 0.15, y0), (x0 + 0.15, y1)), 0.6, 0.03))  # strap
    ops.append(_line(_seg((x1 - 0.15, y0), (x1 - 0.15, y1)), 0.6, 0.03))
    return (x0 + 0.05, y0 + 0.05, x1 - 0.05, y1 - 0.05)


def _cab(rng: Rng, ops: list[_Op], x1: float, roof: float) -> Zone:
    """Cab-over tractor cab facing -x from x=0 to ``x1``; returns the sleeper space."""
    body = _seg((0.05, 0.95), (0.0, 1.9), (0.12, roof - 0.2), (0.45, roof), (x1, roof), (x1, 0.95))
    ops.append(_fill(body, 0.3, tex=0.05))
    ops.append(_line(body, 1.0, 0.06, closed=True))
    ops.append(_fill(_seg((0.16, 2.25), (0.26, roof - 0.35), (1.1, roof - 0.35), (1.1, 2.25)), -0.2))  # window
    ops.append(_line(_rect(0.2, 1.05, 1.35, roof - 0.25), 0.4, 0.03, closed=True))  # door frame
    ops.append(_fill(_rect(0.05, 0.95, 0.22, 1.95), 0.6, tex=0.2))  # radiator / grille
    seat = _seg((1.2, 1.55), (1.65, 1.55), (1.7, 1.8), (1.55, 2.7), (1.4, 2.7), (1.45, 1.8))
    ops.append(_fill(seat, 0.35, tex=0.2))
    ops.append(_line(_ellipse(0.65, 2.2, 0.05, 0.22, 16), 0.6, 0.03, closed=True))  # steering wheel
    ops.append(_line(_seg((0.65, 2.2), (0.95, 1.7)), 0.8, 0.04))
    ops.append(_fill(_rect(1.75, 1.9, x1 - 0.05, 2.05), 0.4))  # bunk
    ops.append(_line(_seg((0.02, 0.98), (0.02, 0.7), (0.4, 0.7)), 1.2, 0.06))  # bumper
    if rng.random() < 0.6:  # roof fairing (fibreglass)
        fairing = _seg((0.5, roof), (1.1, roof + 0.4), (x1, roof + 0.45), (x1, roof))
        ops.append(_fill(fairing, 0.12))
        ops.append(_line(fairing, 0.5, 0.03, closed=True))
    return (1.75, 2.1, x1 - 0.1, roof - 0.1)


def _box(ops: list[_Op], x0: float, y0: float, x1: float, y1: float, kind: str) -> None:
    """A cargo body: side walls seen face-on (light), walls along the beam as dense lines."""
    wall = {"box": 0.22, "curtain": 0.05, "container": 0.3, "van": 0.18}[kind]
    ops.append(_fill(_rect(x0, y0, x1, y1), wall, tex=0.05))
    ops.append(_line(_rect(x0, y0, x1, y1), 1.0, 0.06, closed=True))
    ops.append(_fill(_rect(x0, y0, x1, y0 + 0.12), 0.8, tex=0.15))  # floor
    step = 0.28 if kind == "container" else (1.2 if kind == "curtain" else 0.6)
    posts = [_seg((x, y0 + 0.12), (x, y1)) for x in np.arange(x0 + step, x1 - 0.1, step)]
    if posts:
        ops.append(_line(posts, 0.18 if kind == "container" else 0.3, 0.07 if kind == "container" else 0.05))
    ops.append(_line(_seg((x0 + 0.06, y0), (x0 + 0.06, y1)), 1.0, 0.1))  # front and rear frames
    ops.append(_line(_seg((x1 - 0.06, y0), (x1 - 0.06, y1)), 1.2, 0.12))
    for x in (x1 - 0.35, x1 - 0.7):  # door locking bars
        ops.append(_line(_seg((x, y0 + 0.1), (x, y1 - 0.05)), 0.7, 0.035))
    if kind == "container":
        for cx in (x0 + 0.1, x1 - 0.1):
            for cy in (y0 + 0.06, y1 - 0.06):
                ops.append(_fill(_rect(cx - 0.1, cy - 0.07, cx + 0.1, cy + 0.07), 2.2))


def _crossmembers(ops: list[_Op], x0: float, x1: float, y: float) -> None:
    ops.append(_fill([_rect(x, y - 0.12, x + 0.08, y) for x in np.arange(x0 + 0.2, x1 - 0.1, 0.45)], 0.7))


def _tractor(rng: Rng, lay: _Layout, roof: float, rear_axles: int) -> float:
    """Cab, engine, chassis, tank and axles of a tractor unit; returns its chassis end."""
    ops = lay.ops
    sleeper = _cab(rng, ops, 2.35, roof)
    _engine(rng, ops, 0.35, 0.8, 1.45, 1.75)
    end = 4.4 + 1.3 * (rear_axles - 1)
    _chassis(ops, 0.2, end, 0.85, 0.28)
    tank = _fuel_tank(ops, 2.45, 0.45, 3.4, 1.05)
    ops.append(_fill(_rect(2.5, 1.15, 3.1, 1.5), 1.1))  # battery box
    ops.append(_line(_seg((2.45, 2.3), (2.45, roof - 0.2)), 0.9, 0.1))  # exhaust stack
    _wheel(ops, 1.25, 0.52)
    for i in range(rear_axles):
        _wheel(ops, 3.9 + 1.3 * i, 0.52, dual=True)
    lay.hides += [(sleeper, (*_SMALL, "person")), (tank, ("drug_package",)), ((2.4, 1.55, 3.1, 2.6), _SMALL)]
    return end


def _truck(rng: Rng) -> _Layout:
    roof = rng.uniform(3.55, 3.85)
    if rng.random() < 0.65:  # articulated: tractor + 13.6 m semitrailer
        lay = _Layout(16.6, 4.1)
        _tractor(rng, lay, roof, int(rng.integers(1, 3)))
        x0, x1, floor, top = 3.0, 16.6, 1.25, rng.uniform(3.9, 4.1)
        _chassis(lay.ops, x0 + 0.3, x1 - 0.1, floor - 0.3, 0.25)
        lay.ops.append(_line(_seg((5.6, floor - 0.3), (5.6, 0.25)), 1.0, 0.08))  # landing legs
        lay.ops.append(_fill(_rect(5.45, 0.2, 5.75, 0.3), 1.2))
        for i in range(3):
            _wheel(lay.ops, x1 - 3.6 + 1.31 * i, 0.48, dual=True)
    else:  # rigid truck, box on its own chassis
        length = rng.uniform(9.5, 11.5)
        lay = _Layout(length, 3.9)
        sleeper = _cab(rng, lay.ops, 2.35, roof)
        _engine(rng, lay.ops, 0.35, 0.8, 1.45, 1.75)
        _chassis(lay.ops, 0.2, length - 0.3, 0.85, 0.28)
        tank = _fuel_tank(lay.ops, 2.5, 0.45, 3.4, 1.0)
        _wheel(lay.ops, 1.25, 0.5)
        _wheel(lay.ops, length - 2.4, 0.5, dual=True)
        lay.hides += [(sleeper, (*_SMALL, "person")), (tank, ("drug_package",))]
        x0, x1, floor, top = 2.6, length, 1.2, rng.uniform(3.6, 3.85)
    kind = "curtain" if rng.random() < 0.3 else "box"
    _box(lay.ops, x0, floor, x1, top, kind)
    _crossmembers(lay.ops, x0, x1, floor)
    inner = (x0 + 0.12, floor + 0.12, x1 - 0.12, top - 0.08)
    lay.cargo.append(inner)
    lay.hides += [
        (inner, CLASSES),
        (inner, CLASSES),
        ((x0 + 0.05, top - 0.3, x1 - 0.1, top - 0.02), _FLAT),  # roof cavity
        ((x0 + 0.5, floor - 0.35, x1 - 0.5, floor - 0.02), ("drug_package", "weapon", "ammunition")),  # under floor
    ]
    return lay


def _container(rng: Rng) -> _Layout:
    high = rng.uniform(2.59, 2.9)
    if rng.random() < 0.5:  # on a road chassis behind a tractor
        lay = _Layout(3.0 + 12.2 + 0.3, 1.3 + high + 0.1)
        _tractor(rng, lay, rng.uniform(3.4, 3.8), int(rng.integers(1, 3)))
        slots = [(3.1, 15.3)] if rng.random() < 0.7 else [(3.1, 9.16), (9.24, 15.3)]
        floor = 1.3
        _chassis(lay.ops, 3.2, 15.4, floor - 0.3, 0.25)
        for i in range(3):
            _wheel(lay.ops, 15.3 - 3.4 + 1.31 * i, 0.48, dual=True)
    else:  # rail flatcar with two bogies
        length = rng.uniform(18.0, 19.6)
        lay = _Layout(length, 1.25 + high + 0.1)
        floor = 1.25
        lay.ops.append(_fill(_rect(0.3, floor - 0.32, length - 0.3, floor), 0.9, tex=0.1))  # deck and sills
        lay.ops.append(_line(_seg((0.3, floor - 0.32), (length - 0.3, floor - 0.32)), 1.4, 0.05))
        for cx in (0.0, length):  # couplers
            lay.ops.append(_fill(_rect(cx - 0.3 if cx else 0.0, floor - 0.3, cx if cx else 0.3, floor - 0.1), 2.0))
        for b in (2.4, length - 2.4):
            lay.ops.append(_fill(_rrect(b - 1.3, 0.35, b + 1.3, 0.9, 0.12), 1.3, tex=0.1))  # bogie frame
            for dx in (-0.9, 0.9):
                _wheel(lay.ops, b + dx, 0.46)
        half = (length - 0.6) / 2
        slots = [(0.3 + (length - 0.6 - 12.19) / 2, 0.3 + (length - 0.6 + 12.19) / 2)]
        if rng.random() < 0.4:
            slots = [(0.35, 0.35 + 6.06), (0.3 + half + 0.05, 0.3 + half + 6.11)]
        lay.hides.append(((1.0, floor - 0.3, length - 1.0, floor - 0.05), ("drug_package", "weapon")))
    for x0, x1 in slots:
        _box(lay.ops, x0, floor, x1, floor + high, "container")
        inner = (x0 + 0.1, floor + 0.12, x1 - 0.1, floor + high - 0.1)
        if rng.random() < 0.9:
            lay.cargo.append(inner)
        lay.hides += [(inner, CLASSES), (inner, CLASSES), ((x0, floor - 0.25, x1, floor), ("drug_package",))]
    return lay


def _van(rng: Rng) -> _Layout:
    length, top = rng.uniform(5.0, 6.6), rng.uniform(2.3, 2.75)
    lay = _Layout(length, top)
    ops = lay.ops
    body = _seg(
        (0.0, 0.45), (0.02, 0.95), (0.35, 1.12), (0.95, 1.28), (1.55, top - 0.05), (1.75, top),
        (length - 0.12, top), (length, top - 0.12), (length, 0.5), (length - 0.1, 0.4), (0.1, 0.38),
    )  # fmt: skip
    ops.append(_fill(body, 0.2, tex=0.05))
    ops.append(_line(body, 0.9, 0.05, closed=True))
    ops.append(_fill(_seg((1.0, 1.32), (1.52, top - 0.12), (1.95, top - 0.12), (1.95, 1.32)), -0.15))  # window
    _engine(rng, ops, 0.12, 0.5, 0.8, 1.05)
    ops.append(_fill(_seg((1.35, 0.75), (1.75, 0.75), (1.8, 0.95), (1.7, 1.75), (1.55, 1.75), (1.6, 0.95)), 0.35))
    ops.append(_line(_ellipse(1.2, 1.3, 0.04, 0.18), 0.6, 0.03, closed=True))
    ops.append(_line(_seg((2.05, 0.62), (2.05, top - 0.05)), 0.6, 0.04))  # bulkhead
    ops.append(_fill(_rect(2.05, 0.55, length - 0.05, 0.63), 0.7))  # floor
    _chassis(ops, 0.3, length - 0.3, 0.38, 0.16)
    tank = _fuel_tank(ops, 2.6, 0.25, 3.4, 0.52)
    _wheel(ops, 0.8, 0.34)
    _wheel(ops, length - 1.25, 0.34, dual=rng.random() < 0.4)
    inner = (2.1, 0.64, length - 0.08, top - 0.08)
    if rng.random() < 0.85:
        lay.cargo.append(inner)
    lay.hides += [
        (inner, CLASSES), (inner, CLASSES), (tank, ("drug_package",)),
        ((2.1, top - 0.22, length - 0.2, top - 0.03), _FLAT),  # roof lining
        ((1.85, 0.65, 2.04, top - 0.1), _FLAT),  # behind the bulkhead
        ((1.2, 0.65, 1.85, 1.0), _SMALL),  # under the seats
    ]  # fmt: skip
    return lay


def _car(rng: Rng) -> _Layout:
    length, top = rng.uniform(4.1, 4.9), rng.uniform(1.38, 1.55)
    lay = _Layout(length, top)
    ops = lay.ops
    a, c = 0.2 * length, 0.5 * length  # windscreen base, rear of roof
    body = _seg(
        (0.0, 0.35), (0.0, 0.75), (0.15, 0.88), (a, 0.98), (a + 0.55, top), (c + 0.6, top),
        (length - 0.55, 1.02), (length - 0.05, 0.98), (length, 0.5), (length - 0.2, 0.3), (0.15, 0.3),
    )  # fmt: skip
    ops.append(_fill(body, 0.15, tex=0.05))
    ops.append(_line(body, 0.35, 0.07, closed=True))  # curved panels: a soft edge ...
    ops.append(_line(body, 0.9, 0.02, closed=True))  # ... around a sharp one
    ops.append(_fill(_seg((a - 0.05, 0.8), (a + 0.1, 1.0), (a + 0.35, 1.0), (a + 0.3, 0.8)), 0.45, tex=0.3))  # dash
    ops.append(_fill(_rect(0.04, 0.4, 0.12, 0.8), 0.5, tex=0.3))  # radiator
    ops.append(_fill(_rect(a - 0.45, 0.7, a - 0.2, 0.88), 1.2))  # battery
    for bx in (0.0, length - 0.12):  # bumper beams
        ops.append(_fill(_rect(bx, 0.45, bx + 0.12, 0.6), 0.8))
    for dx0, dx1 in ((a + 0.1, c - 0.05), (c + 0.05, length - 1.2)):  # side-impact beams in the doors
        ops.append(_line(_seg((dx0, 0.5), (dx1, 0.78)), 0.7, 0.035))
    ops.append(_line(_seg((0.7, 0.33), (c, 0.28), (length - 0.6, 0.3)), 0.6, 0.035))  # exhaust
    ops.append(_fill(_rrect(length - 1.25, 0.24, length - 0.7, 0.36, 0.05), 0.8))  # silencer
    for wx in (0.8, length - 0.85):  # coil springs over the wheels
        coil = _seg(*[(wx + (0.06 if i % 2 else -0.06), 0.5 + 0.045 * i) for i in range(7)])
        ops.append(_line(coil, 0.8, 0.015))
    ops.append(_fill(_seg((a + 0.08, 1.0), (a + 0.56, top - 0.06), (c + 0.55, top - 0.06), (c + 0.65, 1.0)), -0.12))
    for x0, x1 in ((a + 0.5, a + 0.6), (c - 0.05, c + 0.05)):  # A and B pillars
        ops.append(_line(_seg((x0, 1.0), (x1, top - 0.05)), 0.5, 0.06))
    ops.append(_line(_seg((0.1, 0.95), (length - 0.1, 0.95)), 0.35, 0.03))  # door waist
    _engine(rng, ops, 0.15, 0.38, min(0.75, a - 0.1), 0.82)
    for sx in (a + 0.75, c + 0.35):  # front and rear seats, springs as lines
        seat = _seg((sx - 0.3, 0.45), (sx + 0.2, 0.45), (sx + 0.25, 0.62), (sx + 0.35, top - 0.15),
                    (sx + 0.2, top - 0.15), (sx + 0.08, 0.68), (sx - 0.3, 0.66))  # fmt: skip
        ops.append(_fill(seat, 0.3, tex=0.25))
        ops.append(_line([_seg((sx - 0.25, y), (sx + 0.15, y)) for y in (0.5, 0.56, 0.62)], 0.25, 0.01))
    ops.append(_line(_ellipse(a + 0.35, 0.98, 0.03, 0.15), 0.5, 0.025, closed=True))
    tank = _fuel_tank(ops, c + 0.05, 0.3, c + 0.7, 0.46)
    _wheel(ops, 0.8, 0.31)
    _wheel(ops, length - 0.85, 0.31)
    trunk = (length - 0.95, 0.48, length - 0.08, 0.98)
    if rng.random() < 0.6:  # spare wheel under the trunk floor
        ops.append(_line(_ellipse(length - 0.5, 0.42, 0.3, 0.06), 0.5, 0.05, closed=True))
    lay.cargo.append(trunk)
    lay.hides += [
        (trunk, CLASSES), (trunk, _SMALL), (tank, ("drug_package",)),
        ((a + 0.3, 0.46, c + 0.9, 0.7), ("weapon", "drug_package", "ammunition", "cigarettes")),
        ((c + 0.1, 0.68, length - 0.95, 1.05), CLASSES),  # rear seat, under a blanket
        ((0.3, 0.5, length - 0.3, 0.92), ("drug_package", "weapon")),  # door panels
    ]  # fmt: skip
    return lay


_BUILDERS = {"truck": _truck, "van": _van, "container": _container, "car": _car}


# ---------------------------------------------------------------- cargo


def _box_item(rng: Rng, ops: list[_Op], x0: float, y0: float, x1: float, y1: float, dens: float) -> None:
    """A carton or crate with a random density, grain and sometimes visible contents."""
    d = rng.uniform(0.12, 0.9) * dens
    ops.append(_fill(_rect(x0, y0, x1, y1), d, tex=rng.uniform(0.1, 0.4)))
    ops.append(_line(_rect(x0, y0, x1, y1), 0.12 + 0.3 * d, 0.015, closed=True))
    u = rng.random()
    if u < 0.2:  # cans / jars in a grid
        r = rng.uniform(0.035, 0.07)
        xs, ys = np.arange(x0 + r * 1.2, x1 - r, 2.3 * r), np.arange(y0 + r * 1.2, y1 - r, 2.3 * r)
        ops.append(_fill([_ellipse(x, y, r, r, 10) for x in xs for y in ys], rng.uniform(0.15, 0.5)))
    elif u < 0.5:  # loose parts
        k = int(rng.integers(2, 9))
        cx, cy = rng.uniform(x0, x1, k), rng.uniform(y0, y1, k)
        sx, sy = rng.uniform(0.02, 0.22, k), rng.uniform(0.02, 0.15, k)
        shapes = [
            _rect(max(x0, a - p), max(y0, b - q), min(x1, a + p), min(y1, b + q))
            for a, b, p, q in zip(cx, cy, sx, sy, strict=True)
        ]
        ops.append(_fill(shapes, rng.uniform(0.2, 1.4), tex=0.2))


def _stack(rng: Rng, ops: list[_Op], style: str, x0: float, x1: float, y0: float, top: float, dens: float) -> None:
    """One column of goods from the floor ``y0`` up to at most ``top``."""
    if style in ("pallets", "machinery", "drums"):  # on a pallet
        ops.append(_fill(_rect(x0, y0 + 0.11, x1, y0 + 0.14), 0.35))
        ops.append(_fill([_rect(x, y0, x + 0.1, y0 + 0.11) for x in (x0, (x0 + x1) / 2 - 0.05, x1 - 0.1)], 0.4))
        y0 += 0.14
    if top - y0 < 0.15:
        return
    if style == "pallets":
        n = int(rng.integers(1, 4))
        ys = np.sort(rng.uniform(y0, top, n - 1))
        for a, b in zip([y0, *ys], [*ys, top], strict=True):
            if b - a > 0.08:
                _box_item(rng, ops, x0, a, x1, b, dens)
    elif style == "mixed":
        y = y0
        while y < top - 0.1:
            h = min(rng.uniform(0.15, 0.6), top - y)
            w = rng.uniform(0.5, 1.0) * (x1 - x0)
            a = rng.uniform(x0, x1 - w)
            _box_item(rng, ops, a, y, a + w, y + h, dens)
            y += h
    elif style == "sacks":
        ry = rng.uniform(0.07, 0.12)
        rows = np.arange(y0 + ry, top - ry, 1.8 * ry)
        sacks = [_ellipse((x0 + x1) / 2 + rng.uniform(-0.05, 0.05), y, (x1 - x0) / 2, ry, 20) for y in rows]
        for s in sacks:
            ops.append(_fill(s, rng.uniform(0.35, 0.8) * dens, tex=0.25))
    elif style == "drums":
        h = min(0.88, top - y0)
        for a in np.arange(x0, x1 - 0.55, 0.6):
            level = y0 + h * rng.uniform(0.5, 0.95)
            ops.append(_fill(_rect(a, y0, a + 0.58, level), rng.uniform(0.4, 0.8) * dens))
            ops.append(_line(_rect(a, y0, a + 0.58, y0 + h), 0.45, 0.02, closed=True))
            ops.append(_line([_seg((a, y0 + h * f), (a + 0.58, y0 + h * f)) for f in (0.33, 0.66)], 0.5, 0.02))
    elif style == "tyres":
        r = min(rng.uniform(0.28, 0.4), (top - y0) / 2)
        rings = [_ellipse(x + r, y0 + r, r * 0.8, r * 0.8, 24) for x in np.arange(x0, x1 - 2 * r + 0.01, 2 * r)]
        if rings:
            ops.append(_line(rings, 0.45 * dens, r * 0.35, closed=True, tex=0.2))
            ops.append(_line(rings, 0.5, 0.01, closed=True))
    else:  # machinery: a dense irregular casting with bolts and shafts
        pts = np.column_stack((rng.uniform(x0, x1, 9), rng.uniform(y0, y0 + (top - y0) * rng.uniform(0.4, 1), 9)))
        pts[:3, 1] = y0  # it stands on its skid
        hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        ops.append(_fill(hull, rng.uniform(0.8, 2.0) * dens, tex=0.3))
        c = pts.mean(axis=0)
        ops.append(_fill(_ellipse(c[0], c[1], 0.06, 0.06, 12), rng.uniform(0.8, 1.5)))
        ops.append(_line(_seg(tuple(pts[0]), tuple(pts[1])), 1.0, 0.04))


_STYLES = ("pallets", "mixed", "sacks", "drums", "tyres", "machinery")
_STYLE_P = (0.42, 0.2, 0.12, 0.09, 0.08, 0.09)


def _cargo(rng: Rng, ops: list[_Op], zone: Zone) -> list[Zone]:
    """Fill a cargo space: empty, sparse, medium or packed; rows side by side add up.

    Returns the stacks drawn, where contraband can be buried in the goods.
    """
    x0, y0, x1, y1 = zone
    stacks: list[Zone] = []
    load = int(rng.choice(4, p=(0.08, 0.22, 0.35, 0.35)))
    if load == 0:
        return stacks
    fill = (0.0, rng.uniform(0.25, 0.55), rng.uniform(0.55, 0.9), rng.uniform(0.9, 1.0))[load]
    dens = rng.uniform(0.7, 1.8)
    small = x1 - x0 < 1.5  # a car boot or similar
    if rng.random() < 0.06 and not small:  # bulk goods (grain, sand, scrap) with a wavy top
        xs = np.linspace(x0, x1, 24)
        ys = y0 + (y1 - y0) * np.clip(rng.uniform(0.3, 0.7) + np.cumsum(rng.normal(0, 0.05, 24)), 0.1, 0.95)
        poly = np.vstack([np.column_stack((xs, ys)), [[x1, y0], [x0, y0]]])
        ops.append(_fill(poly, rng.uniform(0.6, 1.6), tex=0.2))
        return [(x0, y0, x1, float(ys.min()))]
    for _ in range(1 if load < 3 else 2):  # packed: a second row of pallets behind the first
        style = str(rng.choice(_STYLES, p=_STYLE_P))
        x = x0 + rng.uniform(0.0, 0.3)
        while x < x1 - 0.2:
            if rng.random() < 0.25:
                style = str(rng.choice(_STYLES, p=_STYLE_P))
            w = min(rng.uniform(0.25, 0.6) if small else rng.uniform(0.8, 1.3), x1 - x)
            if rng.random() < fill:
                top = y0 + (y1 - y0) * (rng.uniform(0.5, 0.98) if load == 3 else rng.uniform(0.25, 0.85))
                _stack(rng, ops, style, x, x + w, y0, top, dens)
                stacks.append((x, y0, x + w, top))
            x += w + rng.uniform(0.02, 0.2)
    k = int(rng.poisson(2 + 4 * load))  # loose clutter, mostly low down
    if k:
        sx, sy = rng.uniform(0.03, 0.2, k), rng.uniform(0.02, 0.12, k)
        cx, cy = rng.uniform(x0, x1, k), y0 + sy + (y1 - y0) * 0.8 * rng.random(k) ** 3
        polys = [_ellipse(a, b, p, q, 12) for a, b, p, q in zip(cx, cy, sx, sy, strict=True)]
        ops.append(_fill(polys, rng.uniform(0.2, 0.9), tex=0.3))
    return stacks


# ---------------------------------------------------------------- concealed objects
# Each builder returns ops in object-local metres centred near the origin, y up. ``room``
# (width, height in metres, in the object's own frame) caps how many items a stack holds.

Room = tuple[float, float]


def _fit(n: int, size: float, room: float) -> int:
    """At most ``n`` items of ``size`` in ``room``, at least one."""
    return max(1, min(n, int(room / size)))


def _weapon(rng: Rng, ppm: float, room: Room) -> list[_Op]:
    if rng.random() < 0.55 or max(room) < 0.8:  # pistol, muzzle towards -x
        return [
            _fill(_rect(-0.095, 0.02, 0.095, 0.052), rng.uniform(2.2, 3.0)),  # slide
            _line(_seg((-0.095, 0.036), (0.04, 0.036)), 1.0, 0.012),  # barrel
            _fill(_rect(-0.06, 0.0, 0.08, 0.022), 2.0),  # frame
            _fill(_seg((0.03, 0.01), (0.078, 0.01), (0.1, -0.09), (0.052, -0.096)), 2.0),  # grip
            _fill(_seg((0.045, 0.0), (0.067, 0.0), (0.085, -0.08), (0.062, -0.083)), 1.2),  # magazine
            _line(_seg((0.0, 0.0), (-0.008, -0.03), (0.03, -0.035), (0.038, -0.01)), 1.8, 0.007),  # guard
        ]
    return [  # rifle
        _line(_seg((-0.5, 0.035), (-0.05, 0.035)), 2.8, 0.02),  # barrel
        _fill(_rect(-0.33, 0.012, -0.06, 0.058), 1.0, tex=0.2),  # handguard
        _fill(_rect(-0.46, 0.045, -0.44, 0.085), 2.0),  # front sight
        _fill(_rect(-0.07, 0.0, 0.19, 0.07), 2.6),  # receiver
        _fill(_seg((0.0, 0.0), (0.065, 0.0), (0.03, -0.2), (-0.045, -0.185)), 2.1),  # curved magazine
        _fill(_seg((0.13, 0.0), (0.17, 0.0), (0.2, -0.1), (0.16, -0.11)), 1.5),  # pistol grip
        _fill(_seg((0.19, 0.065), (0.46, 0.035), (0.46, -0.08), (0.19, 0.005)), 0.8, tex=0.15),  # stock
        _line(_seg((0.09, 0.0), (0.085, -0.035), (0.13, -0.035)), 1.5, 0.008),  # trigger guard
    ]


def _ammunition(rng: Rng, ppm: float, room: Room) -> list[_Op]:
    n = rng.uniform(0.04, 0.08)  # cartridge length
    d = n * rng.uniform(0.22, 0.35)
    dens = rng.uniform(1.5, 2.6)
    cart = np.array([[-d / 2, 0], [d / 2, 0], [d / 2, 0.7 * n], [d / 4, 0.92 * n], [0, n], [-d / 4, 0.92 * n],
                     [-d / 2, 0.7 * n]])  # fmt: skip
    if rng.random() < 0.6:  # boxed, standing in rows, inside a steel can
        cols = _fit(int(rng.integers(4, 13)), d * 1.25, room[0])
        rows = _fit(int(rng.integers(1, 4)), n * 1.15, room[1])
        w, h = cols * d * 1.25, rows * n * 1.15
        carts = [
            cart + (-w / 2 + (i + 0.5) * d * 1.25, -h / 2 + j * n * 1.15) for i in range(cols) for j in range(rows)
        ]
        box = _rect(-w / 2 - 0.01, -h / 2 - 0.01, w / 2 + 0.01, h / 2 + 0.01)
        return [_fill(carts, dens), _fill(box, 0.25), _line(box, 0.6, 0.006, closed=True)]
    k = int(rng.integers(12, 40))  # a loose pile
    r = n * math.sqrt(k) * 0.55
    carts = []
    for _ in range(k):
        a, rr, t = rng.uniform(0, 2 * math.pi), r * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        c, s = math.cos(t), math.sin(t)
        carts.append(cart @ np.array([[c, s], [-s, c]]) + (rr * math.cos(a), 0.6 * rr * math.sin(a)))
    return [_fill(carts, dens)]


def _drug_package(rng: Rng, ppm: float, room: Room) -> list[_Op]:
    bw, bh = rng.uniform(0.22, 0.34), rng.uniform(0.06, 0.12)
    g = 0.006
    cols = _fit(int(rng.integers(1, 5)), bw + g, room[0])
    rows = _fit(int(rng.integers(1, 6)), bh + g, room[1])
    w, h = cols * (bw + g), rows * (bh + g)
    dens = rng.uniform(0.55, 1.0)
    ops = []
    for i in range(cols):
        for j in range(rows):
            x, y = -w / 2 + i * (bw + g), -h / 2 + j * (bh + g)
            brick = _rrect(x, y, x + bw, y + bh, 0.012)
            ops.append(_fill(brick, dens * rng.uniform(0.93, 1.07), tex=0.04))
            ops.append(_line(brick, 0.15, 0.004, closed=True))  # wrapping tape
    return ops


_POSES = {  # joint positions (metres): head, neck, hip, knee, foot, elbow, hand
    "standing": ((0.0, 1.6), (0.0, 1.42), (0.0, 0.92), (0.03, 0.5), (0.0, 0.06), (0.04, 1.13), (-0.02, 0.84)),
    "sitting": ((0.04, 0.82), (0.04, 0.64), (0.0, 0.1), (-0.36, 0.46), (-0.52, 0.06), (-0.12, 0.38), (-0.3, 0.47)),
    "crouching": ((-0.15, 0.9), (-0.08, 0.75), (0.1, 0.35), (-0.25, 0.5), (-0.05, 0.05), (-0.3, 0.55), (-0.4, 0.3)),
}


def _person_front(rng: Rng) -> list[_Op]:
    """A human facing the beam: wide torso, two arms, two legs, ribs and pelvis."""
    t = rng.uniform(0.45, 0.7)
    arm = rng.uniform(0.0, 0.25)  # arms hanging or held out a little
    ops = [
        _fill(_seg((-0.2, 1.42), (0.2, 1.42), (0.16, 0.9), (-0.16, 0.9)), 0.8 * t, tex=0.1),
        _fill(_ellipse(0.0, 1.6, 0.085, 0.115, 20), 0.8 * t),
        _line(_seg((0.0, 1.42), (0.0, 1.5)), 0.6 * t, 0.1),
        _line(_ellipse(0.0, 1.6, 0.078, 0.105, 20), 0.7, 0.014, closed=True),  # skull
        _line(_seg((0.0, 1.42), (0.0, 0.95)), 0.5, 0.03),  # spine
        _line([_seg((-0.14, y), (0.14, y)) for y in (1.34, 1.27, 1.2, 1.13, 1.06)], 0.22, 0.012),  # ribs
        _line(_ellipse(0.0, 0.95, 0.15, 0.08, 16), 0.35, 0.02, closed=True),  # pelvis
    ]
    for side in (-1.0, 1.0):
        hip, knee, foot = (side * 0.1, 0.92), (side * 0.12, 0.5), (side * 0.13, 0.06)
        sh, el, ha = (side * 0.2, 1.4), (side * (0.25 + arm), 1.13), (side * (0.27 + 2 * arm), 0.86 + arm)
        ops += [
            _line(_seg(hip, knee), 0.55 * t, 0.14),
            _line(_seg(knee, foot), 0.45 * t, 0.1),
            _line(_seg(sh, el), 0.4 * t, 0.09),
            _line(_seg(el, ha), 0.35 * t, 0.07),
            _line(_seg(hip, knee, foot), 0.45, 0.028),  # femur, tibia
            _line(_seg(sh, el, ha), 0.3, 0.02),
        ]
    return ops


def _person(rng: Rng, ppm: float, pose: str) -> list[_Op]:
    """A human in profile: soft tissue as thick rounded strokes, skull and long bones denser."""
    if pose == "front":
        return _person_front(rng)
    head, neck, hip, knee, foot, elbow, hand = _POSES[pose]
    t = rng.uniform(0.5, 0.8)  # tissue attenuation along the body's width
    body = [
        _line(_seg(neck, hip), 0.9 * t, rng.uniform(0.26, 0.34), tex=0.1),  # torso
        _line(_seg(hip, knee), 0.7 * t, 0.15),
        _line(_seg(knee, foot), 0.55 * t, 0.11),
        _line(_seg((foot[0], foot[1]), (foot[0] - 0.2, foot[1] - 0.02)), 0.5 * t, 0.08),  # foot
        _line(_seg(neck, elbow), 0.45 * t, 0.09),
        _line(_seg(elbow, hand), 0.4 * t, 0.07),
        _line(_seg(neck, (head[0], head[1] - 0.05)), 0.6 * t, 0.11),
        _fill(_ellipse(head[0], head[1], 0.095, 0.115, 20), 0.8 * t),
    ]
    down = np.subtract(hip, neck)
    across = np.array([-down[1], down[0]]) / max(1e-6, float(np.hypot(*down)))  # perpendicular to the spine
    ribs = [
        _seg(tuple(c - 0.1 * across), tuple(c + 0.1 * across))
        for c in np.add(neck, np.outer((0.15, 0.27, 0.39, 0.51), down))
    ]
    bones = [
        _line(_ellipse(head[0], head[1], 0.085, 0.105, 20), 0.7, 0.016, closed=True),  # skull
        _fill(_ellipse(head[0] - 0.03, head[1] - 0.07, 0.05, 0.03, 12), 0.3),  # jaw
        _line(_seg(neck, hip), 0.5, 0.035),  # spine
        _line(_seg(hip, knee), 0.5, 0.032),  # femur
        _line(_seg(knee, foot), 0.4, 0.026),  # tibia
        _line(_seg(neck, elbow, hand), 0.3, 0.02),
        _line(ribs, 0.22, 0.012),
        _line(_ellipse(hip[0], hip[1] + 0.05, 0.1, 0.08, 16), 0.35, 0.018, closed=True),  # pelvis
    ]
    return body + bones


def _bottle(rng: Rng, ppm: float, room: Room) -> list[_Op]:
    """Rows of bottles (body, shoulder, neck, liquid level), cases stacked in tiers."""
    bw, bh, nh = rng.uniform(0.065, 0.1), rng.uniform(0.17, 0.25), rng.uniform(0.06, 0.1)
    n = _fit(int(rng.integers(3, 10)), bw + 0.012, room[0])
    tiers = _fit(int(rng.integers(1, 4)), bh + nh + 0.04, room[1])
    depth = int(rng.integers(1, 4))  # bottles behind each other in the case
    liquid = rng.uniform(0.25, 0.4) * depth
    fill_to = rng.uniform(0.75, 0.95)
    total = bh + nh + 0.02
    glass, liq, cases = [], [], []
    for j in range(tiers):
        y = j * (total + 0.02)
        for i in range(n):
            x = i * (bw + 0.012)
            outline = _seg((x, y), (x + bw, y), (x + bw, y + bh * 0.8), (x + bw * 0.62, y + bh),
                           (x + bw * 0.62, y + bh + nh), (x + bw * 0.38, y + bh + nh), (x + bw * 0.38, y + bh),
                           (x, y + bh * 0.8))  # fmt: skip
            glass.append(outline)
            liq.append(_rect(x + 0.004, y + 0.008, x + bw - 0.004, y + bh * 0.8 * fill_to))
        cases.append(_rect(-0.01, y - 0.01, n * (bw + 0.012), y + total))
    off = np.array([n * (bw + 0.012) / 2, tiers * (total + 0.02) / 2])
    return [
        _fill([p - off for p in glass], 0.12 * depth),
        _line([p - off for p in glass], 0.25 * depth, 0.006, closed=True),
        _fill([p - off for p in liq], liquid, tex=0.03),
        _line([p - off for p in cases], 0.12, 0.008, closed=True),
    ]


def _cigarettes(rng: Rng, ppm: float, room: Room) -> list[_Op]:
    """Master cases: blocks with a fine regular stripe of packed cigarettes and carton seams."""
    cw, ch = rng.uniform(0.4, 0.6), rng.uniform(0.28, 0.45)
    cols, rows = _fit(int(rng.integers(1, 4)), cw, room[0]), _fit(int(rng.integers(1, 4)), ch, room[1])
    w, h = cols * cw, rows * ch
    pitch = max(rng.uniform(2.2, 3.5) / ppm, 0.008)  # a stripe every few pixels
    layer = rng.uniform(0.05, 0.09)
    dens = rng.uniform(0.45, 0.7)
    ops = [_fill(_rect(-w / 2, -h / 2, w / 2, h / 2), dens)]
    xs = np.arange(-w / 2 + pitch / 2, w / 2, pitch)
    ops.append(_line([_seg((x, -h / 2), (x, h / 2)) for x in xs], 0.3 * dens, pitch * 0.45))
    ys = np.arange(-h / 2 + layer, h / 2, layer)
    ops.append(_line([_seg((-w / 2, y), (w / 2, y)) for y in ys], 0.25, 0.006))
    seams = [_rect(-w / 2 + i * cw, -h / 2 + j * ch, -w / 2 + (i + 1) * cw, -h / 2 + (j + 1) * ch)
             for i in range(cols) for j in range(rows)]  # fmt: skip
    ops.append(_line(seams, 0.35, 0.012, closed=True))
    return ops


def _object(rng: Rng, cls: str, ppm: float, room: Room) -> tuple[list[_Op], float]:
    """Ops and a rotation (radians) for one concealed object that should fit ``room``."""
    if cls == "person":  # lying down where there is no headroom
        poses = ("front", "standing", "sitting", "crouching") if room[1] > 1.75 else ("sitting", "crouching")
        if room[1] < 1.05 or rng.random() < 0.25:  # stretched out, or curled up on one side
            pose = str(rng.choice(("standing", "front"))) if room[0] > 1.6 else "crouching"
            return _person(rng, ppm, pose), rng.choice((-1, 1)) * math.pi / 2 + rng.normal(0, 0.08)
        return _person(rng, ppm, str(rng.choice(poses))), rng.normal(0, 0.08)
    if cls == "weapon":
        return _weapon(rng, ppm, room), rng.uniform(-math.pi, math.pi)
    upright = {"ammunition": 0.0, "drug_package": 0.2, "bottle": 0.25, "cigarettes": 0.15}[cls]
    angle = rng.normal(0, 0.25 if cls == "ammunition" else 0.1)
    if rng.random() < upright:  # turned on its side: the room turns with it
        angle += math.pi / 2
        room = (room[1], room[0])
    build = {"ammunition": _ammunition, "drug_package": _drug_package, "bottle": _bottle}.get(cls, _cigarettes)
    return build(rng, ppm, room), angle


def _conceal(
    rng: Rng, canvas: _Canvas, lay: _Layout, stacks: list[Zone], count: int
) -> list[tuple[str, int, int, np.ndarray]]:
    """Place ``count`` objects in the vehicle's hiding places; returns what was drawn.

    In a cargo space an object is buried in a stack of goods or lies on the floor; elsewhere
    (cab, tank, roof cavity, under the floor) it goes anywhere in that space.
    """
    out = []
    for _ in range(count):
        cls = str(rng.choice(CLASSES))
        zones = [z for z, allowed in lay.hides if cls in allowed]
        zone = zones[int(rng.integers(len(zones)))]
        on_floor = False
        if zone in lay.cargo:
            inside = [s for s in stacks if zone[0] <= s[0] <= zone[2] and zone[1] <= s[1] <= zone[3]]
            if inside and cls != "person" and rng.random() < 0.6:
                zone = inside[int(rng.integers(len(inside)))]
            else:
                on_floor = True
        zx0, zy0, zx1, zy1 = zone
        ops, angle = _object(rng, cls, canvas.ppm, (zx1 - zx0, zy1 - zy0))
        c, s = math.cos(angle), math.sin(angle)
        mirror = rng.choice((-1.0, 1.0))
        rot = np.array([[c * mirror, -s], [s * mirror, c]])
        pts = np.concatenate([p for op in ops for p in op.polys]) @ rot.T
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        size = hi - lo
        k = rng.uniform(0.9, 1.35)  # a little larger than life keeps small things learnable
        k = max(k, _MIN_OBJECT_PX / (canvas.ppm * float(size.max())))
        fit = min((zx1 - zx0) / size[0], (zy1 - zy0) / size[1])
        if k > fit:  # shrink to fit its hiding place, but not below 70 % of life size
            k = max(fit, 0.7, _MIN_OBJECT_PX / (canvas.ppm * float(size.max())))
        lo, hi = lo * k, hi * k
        px = rng.uniform(zx0 - lo[0], max(zx0 - lo[0], zx1 - hi[0]))
        if on_floor or (cls == "person" and rng.random() < 0.7):
            py = zy0 - lo[1] + 0.01
        else:
            py = rng.uniform(zy0 - lo[1], max(zy0 - lo[1], zy1 - hi[1]))
        local = np.hstack((rot * k, [[px], [py]]))  # object -> vehicle metres
        m = canvas.base[:, :2] @ local
        m[:, 2] += canvas.base[:, 2]
        drawn = canvas.stamp(ops, m)
        if drawn is not None:
            out.append((cls, *drawn))
    return out


# ---------------------------------------------------------------- imaging


def _texture(rng: Rng, height: int, width: int) -> np.ndarray:
    """Smooth zero-mean noise (a fine and a coarse octave), within about +-2."""
    out = np.zeros((height, width), np.float32)
    for cell in (4, 24):
        small = rng.random((height // cell + 2, width // cell + 2), dtype=np.float32)
        small -= 0.5
        small *= 2.4
        out += cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return out


# exp(-mu) by table: mu in steps of 1/512 (0.2 % in intensity), far below the noise
_EXP_STEP = 512.0
_EXP = np.exp(-np.arange(16 * 512, dtype=np.float64) / _EXP_STEP).astype(np.float32)
# unit normal quantiles: a uint8 uniform draw through this table is a cheap gaussian
_GAUSS = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)


def _detector(rng: Rng, mu: np.ndarray) -> np.ndarray:
    """``I0 * exp(-mu)``, detector blur, row gains, column stripes and photon noise, as uint8."""
    h, w = mu.shape
    i0 = rng.uniform(236.0, 246.0)
    np.multiply(mu, _EXP_STEP, out=mu)
    np.clip(mu, 0.0, len(_EXP) - 1, out=mu)
    img: np.ndarray = cv2.GaussianBlur(_EXP.take(mu.astype(np.uint16)), (0, 0), rng.uniform(0.55, 0.85))
    rows = rng.normal(1.0, 0.006, size=(h,)).astype(np.float32)  # detector element gains
    dead = rng.integers(0, h, int(rng.integers(0, 3)))
    rows[dead] *= np.asarray(rng.uniform(0.85, 0.95, size=dead.shape), np.float32)
    cols = rng.normal(1.0, 0.008, size=(w,)).astype(np.float32)  # source pulse to pulse
    spikes = rng.integers(0, w, int(rng.integers(0, 4)))
    cols[spikes] *= np.asarray(rng.uniform(0.9, 1.04, size=spikes.shape), np.float32)
    img *= rows[:, None]
    img *= (cols * np.float32(i0))[None, :]
    sd = img * np.float32(_NOISE_GAIN)  # Poisson-like: the variance grows with the signal
    sd += np.float32(_NOISE_FLOOR)
    cv2.sqrt(sd, sd)
    sd *= cv2.LUT(rng.integers(0, 256, (h, w), dtype=np.uint8), _GAUSS)
    img += sd
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def object_visible(total: np.ndarray, own: np.ndarray) -> bool:
    """Could a person see an object in the scan? ``own`` is its attenuation, ``total`` the scan's, per object pixel.

    Judged on the image as it comes out of the detector (grey levels, 8-bit), not on attenuation:
    the object must darken its pixels by at least ``_MIN_CONTRAST`` grey levels on average (behind
    the engine block the scan is black with or without it), and by at least ``_MIN_CLUTTER_RATIO``
    of the spread of what lies behind it: the grey-level variation of the cargo there plus the
    photon noise (a parcel in a pallet of similar parcels, or a faint shadow in noise, is not seen).
    """
    with_obj = np.floor(np.clip(_NOMINAL_I0 * np.exp(-total), 0.0, 255.0))
    without = np.floor(np.clip(_NOMINAL_I0 * np.exp(-(total - own)), 0.0, 255.0))
    drop = float(np.mean(without - with_obj))
    spread = math.sqrt(float(np.var(without)) + float(np.mean(_NOISE_GAIN * with_obj + _NOISE_FLOOR)))
    return drop >= _MIN_CONTRAST and drop >= _MIN_CLUTTER_RATIO * spread


def render_scene(
    seed: int,
    *,
    width: int = 1024,
    height: int = 512,
    vehicle: str | None = None,
    conceal_prob: float = 0.8,
    max_objects: int = 4,
) -> Scene:
    """Render one deterministic scan of a vehicle, with 0..``max_objects`` concealed objects."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if width < 16 or height < 16:
        raise ValueError(f"image must be at least 16x16, got {width}x{height}")
    if vehicle is not None and vehicle not in VEHICLES:
        raise ValueError(f"vehicle must be one of {VEHICLES}, got {vehicle!r}")
    if not 0.0 <= conceal_prob <= 1.0 or max_objects < 0:
        raise ValueError("conceal_prob must be in [0, 1] and max_objects >= 0")
    r_veh, r_cargo, r_obj, r_noise, r_tex = np.random.default_rng(seed).spawn(5)

    kind = str(r_veh.choice(VEHICLES, p=(0.4, 0.2, 0.25, 0.15)))
    kind = vehicle or kind
    lay = _BUILDERS[kind](r_veh)
    # fit the vehicle: most of the width, ground near the bottom, height and width apart
    ppm = min(width * r_veh.uniform(0.86, 0.95) / lay.length, height * 0.86 / lay.height)
    x0 = (width - lay.length * ppm) * r_veh.uniform(0.3, 0.7)
    ground = height - max(2.0, 0.04 * height)
    base = np.array([[ppm, 0.0, x0], [0.0, -ppm, ground]])
    canvas = _Canvas(height, width, base, _texture(r_tex, height, width))

    canvas.draw(lay.ops)
    stacks: list[Zone] = []
    for zone in lay.cargo:
        ops: list[_Op] = []
        stacks += _cargo(r_cargo, ops, zone)
        canvas.draw(ops)
    count = int(r_obj.integers(1, max_objects + 1)) if max_objects and r_obj.random() < conceal_prob else 0
    hidden = _conceal(r_obj, canvas, lay, stacks, count)

    mu = np.maximum(canvas.mu, 0.0, out=canvas.mu)
    flip = bool(r_veh.random() < 0.5)  # the vehicle drives through either way
    truth = []
    for cls, y0, x0_, patch in hidden:
        mask = patch > 0.02
        if mask.sum() < 12:
            continue
        total = mu[y0 : y0 + patch.shape[0], x0_ : x0_ + patch.shape[1]][mask]
        if not object_visible(total, patch[mask]):  # lost behind dense parts, in clutter or noise: not labelled
            continue
        ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        bx1, bx2 = float(x0_ + xs[0]), float(x0_ + xs[-1] + 1)
        by1, by2 = float(y0 + ys[0]), float(y0 + ys[-1] + 1)
        if flip:
            bx1, bx2 = width - bx2, width - bx1
        truth.append(GroundTruth(cls, bx1, by1, bx2, by2))
    image = _detector(r_noise, mu)
    if flip:
        image = np.ascontiguousarray(image[:, ::-1])
    return Scene(image=image, truth=tuple(truth), vehicle=kind, seed=seed)
