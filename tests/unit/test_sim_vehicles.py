"""The vehicle simulator's messages parse with the real parsers, and its trouble shows up."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date

from drivers.serial.decoder import Decoder
from drivers.sim.vehicles import (
    ROLES,
    SHUTTLE_PLATE,
    WATCH_CONTAINER,
    WATCH_PLATE,
    Trouble,
    td3,
    vehicle_messages,
)

PROTOCOL = {"radiation": "radiation", "plate": "plate", "mrz": "mrz", "scale": "scale", "waybill": "barcode",
            "container": "barcode", "rfid": "rfid"}


def parse(role: str, data: bytes) -> list:
    d = Decoder(role, PROTOCOL[role], None)
    return list(d.feed(data, 0.0)) + list(d.flush(0.0))


def test_every_message_of_many_vehicles_is_one_reading_and_trouble_is_what_fails() -> None:
    rng = random.Random(5)
    failed: Counter[str] = Counter()
    plates: Counter[str] = Counter()
    for _ in range(300):
        msgs = vehicle_messages(rng, set(ROLES), Trouble(), today=date(2026, 11, 28))
        assert [at for at, _, _ in msgs] == sorted(at for at, _, _ in msgs)
        for _, role, data in msgs:
            [r] = parse(role, data)
            if role == "plate":
                plates[r.fields["latin"]] += 1
            if not r.valid:
                assert role not in ("plate", "scale", "radiation", "rfid", "waybill"), r.error
                failed.update(r.failed)
    # Only the drawn trouble fails a check: a miskeyed passport number or a wrong container digit.
    assert set(failed) <= {"check_digit:document_number", "check_digit:composite", "check_digit:iso6346"}
    assert failed["check_digit:document_number"] > 0 and failed["check_digit:iso6346"] > 0
    assert plates[WATCH_PLATE] > 0 and plates[SHUTTLE_PLATE] >= 20


def test_roles_limit_what_a_lane_hears() -> None:
    msgs = vehicle_messages(random.Random(1), {"plate", "mrz"})
    assert {role for _, role, _ in msgs} == {"plate", "mrz"}


def test_td3_check_digits_and_miskey() -> None:
    [good] = parse("mrz", td3("SMIRNOV", "PAVEL", "KZ7000777", "KAZ", "800517", "M", "300101"))
    assert good.valid and good.fields["birth_date"] == "1980-05-17" and good.fields["document_number"] == "KZ7000777"
    [bad] = parse("mrz", td3("SMIRNOV", "PAVEL", "KZ7000777", "KAZ", "800517", "M", "300101", miskey=True))
    assert not bad.valid and "check_digit:document_number" in bad.failed
    [c] = parse("container", WATCH_CONTAINER.encode() + b"\r\n")
    assert c.valid and c.kind == "iso6346"
