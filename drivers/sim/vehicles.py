"""Simulated vehicles: one lane's serial devices speaking about the same vehicle, one after another.

``SimulatedScanner`` (serial_fleet) replays samples device by device, so the plate reader and
the scale never talk about the same truck. ``VehicleStream`` plays whole vehicles instead: the
radiation portal sees it arrive, the plate reader reads its plate, the driver's passport is
swiped, the weighbridge weighs it, the waybill (and on rail the container code and e-seal) is
scanned, then it leaves. Some vehicles carry trouble now and then, drawn from a seeded RNG:
a weight that does not match the waybill, an expired or miskeyed passport, a watchlisted plate,
person, document or container, a wrong container check digit, a broken seal, a radiation
alarm, a "shuttle" plate that keeps coming back. ``DEMO_WATCHLIST`` lists the entries this
stream produces, for a watchlist file next to the demo config.

``vehicle_messages`` is pure (what to send, when); ``VehicleStream`` writes it to pty devices.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from stdnum import iso6346

from drivers.serial.protocols.mrz import check_digit
from drivers.sim.serial_sim import PtyDevice

log = logging.getLogger(__name__)

ROLES = ("radiation", "plate", "mrz", "scale", "waybill", "container", "rfid")
_RU_LETTERS = "ABEKMHOPCTYX"
_SURNAMES = ("IVANOV", "PETROVA", "NURLANOV", "ABENOVA", "KIM", "SULEIMENOV", "ORLOVA", "TOKAEV", "ZHANG", "ERIKSSON")
_GIVEN = ("ASKAR", "ANNA", "DMITRY", "AIGERIM", "PAVEL", "DANA", "MARAT", "OLGA", "WEI", "TIMUR")
_STATES = ("KAZ", "RUS", "UZB", "KGZ", "CHN")
_GOODS = ("ceramic tiles", "steel pipes", "apples", "cotton yarn", "car tyres", "mineral water", "furniture")

WATCH_PLATE = "O555OO77"
SHUTTLE_PLATE = "K101KK199"
WATCH_PERSON = ("SMIRNOV", "PAVEL", "800517")  # surname, given name, birth date YYMMDD
WATCH_DOCUMENT = "KZ7000777"
WATCH_CONTAINER = "TGHU770077" + iso6346.calc_check_digit("TGHU770077")

DEMO_WATCHLIST = (
    "kind,value,birth_date,country,reason\n"
    f"plate,{WATCH_PLATE},,,stolen vehicle report\n"
    f"person,SMIRNOV PAVEL,1980-05-17,,wanted for smuggling\n"
    f"document,{WATCH_DOCUMENT},,,lost passport\n"
    f"container,{WATCH_CONTAINER},,,under customs investigation\n"
)


@dataclass(frozen=True)
class Trouble:
    """How often each kind of trouble is drawn (probability per vehicle)."""

    weight_mismatch: float = 0.2
    expired_document: float = 0.08
    bad_mrz: float = 0.05
    watch_plate: float = 0.05
    watch_person: float = 0.05
    watch_document: float = 0.04
    shuttle_plate: float = 0.12
    bad_container: float = 0.08
    watch_container: float = 0.05
    seal_broken: float = 0.12
    radiation_alarm: float = 0.05


def _pad(text: str, width: int) -> str:
    return text.ljust(width, "<")[:width]


def td3(surname: str, given: str, number: str, state: str, birth: str, sex: str, expiry: str,
        *, miskey: bool = False) -> bytes:
    """A passport MRZ (TD3) with every check digit computed; ``miskey`` spoils the number's digit."""
    number = _pad(number, 9)
    digit = (check_digit(number) + (1 if miskey else 0)) % 10
    head = f"{number}{digit}"
    born = f"{birth}{check_digit(birth)}"
    ends = f"{expiry}{check_digit(expiry)}"
    optional = _pad("", 14)
    body = f"{head}{state}{born}{sex}{ends}{optional}{check_digit(optional)}"
    composite = check_digit(f"{number}{check_digit(number)}" + born + ends + optional + str(check_digit(optional)))
    line1 = _pad(f"P<{state}{surname}<<{given}", 44)
    return f"{line1}\r\n{body}{composite}\r\n".encode("ascii")


def mt_weight(kg: int) -> bytes:
    """A Mettler Toledo continuous frame: gross ``kg`` (stable), tare 0."""
    return b"\x02" + f"20 {kg:06d}000000".encode("ascii") + b"\r"


def random_plate(rng: random.Random) -> str:
    if rng.random() < 0.5:
        letters = "".join(rng.choice(_RU_LETTERS) for _ in range(3))
        return f"{letters[0]}{rng.randint(1, 999):03d}{letters[1:]}{rng.choice(('77', '99', '50', '177', '23'))}"
    letters = "".join(rng.choice("ABCDEFGHKLMNPRSTUXYZ") for _ in range(3))
    return f"{rng.randint(1, 999):03d}{letters}{rng.randint(1, 20):02d}"


def random_container(rng: random.Random, *, bad_digit: bool = False) -> str:
    stem = rng.choice(("CSQU", "MSCU", "KZTU", "CAIU")) + f"{rng.randint(0, 999999):06d}"
    digit = int(iso6346.calc_check_digit(stem))
    return stem + str((digit + 1) % 10 if bad_digit else digit)


def vehicle_messages(rng: random.Random, roles: set[str], trouble: Trouble = Trouble(),
                     today: date | None = None) -> list[tuple[float, str, bytes]]:
    """One vehicle: ``[(seconds after arrival, device role, bytes)]`` for the roles this lane has."""
    today = today or date.today()
    t = trouble
    out: list[tuple[float, str, bytes]] = [(0.0, "radiation", b"OC,1\r\n")]
    roll = rng.random()
    plate = (WATCH_PLATE if roll < t.watch_plate else SHUTTLE_PLATE if roll < t.watch_plate + t.shuttle_plate
             else random_plate(rng))
    out.append((0.3, "plate", f"PLATE:{plate};CONF:{rng.uniform(0.8, 0.99):.2f}\r\n".encode()))
    # the driver's passport
    roll = rng.random()
    if roll < t.watch_person:
        surname, given, birth = WATCH_PERSON
    else:
        surname, given = rng.choice(_SURNAMES), rng.choice(_GIVEN)
        born = date(1960, 1, 1) + timedelta(days=rng.randint(0, 40 * 365))
        birth = born.strftime("%y%m%d")
    number = WATCH_DOCUMENT if rng.random() < t.watch_document else (
        rng.choice("NPKA") + f"{rng.randint(0, 99999999):08d}")
    expires = today + timedelta(days=-rng.randint(10, 900) if rng.random() < t.expired_document
                                else rng.randint(30, 3650))
    out.append((1.0, "mrz", td3(surname, given, number, rng.choice(_STATES), birth, rng.choice("MF"),
                                expires.strftime("%y%m%d"), miskey=rng.random() < t.bad_mrz)))
    measured = rng.randint(600, 1900) * 20
    declared = measured * (rng.uniform(0.6, 0.75) if rng.random() < t.weight_mismatch else rng.uniform(0.97, 1.03))
    if "scale" in roles:
        out.append((1.5, "scale", mt_weight(measured)))
    waybill = f"WAYBILL;NO=KZ-{rng.randint(100000, 999999)};KG={round(declared)};GOODS={rng.choice(_GOODS)}"
    if "container" in roles:  # rail: the wagon's container, its consignment note and its e-seal
        roll = rng.random()
        container = WATCH_CONTAINER if roll < t.watch_container else random_container(
            rng, bad_digit=roll > 1 - t.bad_container)
        seal = f"{rng.getrandbits(48):012X}"
        out.append((2.0, "container", f"{container}\r\n".encode()))
        out.append((2.2, "container", f"{waybill};CONT={container};SEALS={seal}\r\n".encode()))
        read = f"{rng.getrandbits(48):012X}" if rng.random() < t.seal_broken else seal
        out.append((2.5, "rfid", f"SEAL={read}\r\n".encode()))
    elif "waybill" in roles:
        out.append((2.0, "waybill", f"{waybill}\r\n".encode()))
    if rng.random() < t.radiation_alarm:
        out.append((3.0, "radiation", b"GA,001978,000004,OCC=1\r\n"))
    else:
        out.append((3.0, "radiation", f"GS,{rng.randint(380, 460):06d},{rng.randint(1, 6):06d}\r\n".encode()))
    out.append((4.0, "radiation", b"OC,0\r\n"))
    return [(at, role, data) for at, role, data in out if role in roles]


class VehicleStream(threading.Thread):
    """Plays a vehicle every ``every_s`` seconds on one lane's simulated devices (pty links by role)."""

    def __init__(self, links: Mapping[str, Path], *, every_s: float = 10.0, seed: int = 0,
                 trouble: Trouble = Trouble()) -> None:
        super().__init__(name="sim-vehicles", daemon=True)
        unknown = set(links) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown device roles {sorted(unknown)}; known: {', '.join(ROLES)}")
        self.devices = {role: PtyDevice(path) for role, path in links.items()}
        self.every_s = every_s
        self.trouble = trouble
        self.rng = random.Random(seed)
        self.vehicles = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            wait = min(2.0, self.every_s)  # the first vehicle soon after start, then one every every_s
            while not self._stop_event.wait(wait):
                wait = self.every_s
                elapsed = 0.0
                for at, role, data in vehicle_messages(self.rng, set(self.devices), self.trouble):
                    if self._stop_event.wait(max(0.0, at - elapsed)):
                        return
                    elapsed = at
                    try:
                        self.devices[role].write(data, timeout=1.0)
                    except (TimeoutError, OSError):
                        pass  # nobody reading yet (runtime starting) or unplugged: the next one will do
                self.vehicles += 1
        finally:
            for device in self.devices.values():
                device.close()
