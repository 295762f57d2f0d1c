import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.envelope import (
    GENESIS_HASH,
    EnvelopeError,
    canonical_json,
    envelope_hash,
    format_ts,
    seal,
    verify_envelope,
)

SCHEMA = json.loads((Path(__file__).parents[2] / "sync" / "schema" / "event.schema.json").read_text())


def _event(seq=1, prev=GENESIS_HASH, payload=None):
    return seal(edge_id="edge-1", edge_epoch="epoch-a", seq=seq, ts=1_764_331_200.1234, type="frame.analysed",
                payload=payload or {"b": 1, "a": [1.5, "x"]}, prev_hash=prev)


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": 1, "a": {"d": "Ж", "c": None}}) == '{"a":{"c":null,"d":"Ж"},"b":1}'.encode()


def test_canonical_json_refuses_nan():
    with pytest.raises(EnvelopeError):
        canonical_json({"x": float("nan")})


def test_timestamp_is_utc_with_milliseconds():
    assert format_ts(0.9999) == "1970-01-01T00:00:00.999Z"
    assert format_ts(1_764_331_200.5) == "2025-11-28T12:00:00.500Z"


def test_sealed_envelope_matches_the_json_schema_and_verifies():
    env = _event()
    jsonschema.validate(env, SCHEMA)
    verify_envelope(env)
    assert env["hash"] == envelope_hash(env)


def test_chain_links_by_prev_hash():
    first = _event(1)
    second = _event(2, prev=first["hash"])
    assert second["prev_hash"] == first["hash"]
    assert second["hash"] != first["hash"]


@pytest.mark.parametrize(
    "field, value",
    [("payload", {"b": 2, "a": [1.5, "x"]}), ("seq", 2), ("edge_id", "edge-2"), ("prev_hash", "1" * 64),
     ("ts", "2025-11-28T12:00:00.124Z"), ("type", "decision")],
)
def test_any_edit_breaks_the_hash(field, value):
    env = _event()
    env[field] = value
    with pytest.raises(EnvelopeError):
        verify_envelope(env)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e.pop("seq"), "missing field 'seq'"),
        (lambda e: e.update(seq=0), "seq must be a positive integer"),
        (lambda e: e.update(extra=1), "unknown field"),
        (lambda e: e.update(schema="other/9"), "schema"),
        (lambda e: e.update(type="Bad Type"), "type"),
        (lambda e: e.update(payload=[1]), "payload must be an object"),
        (lambda e: e.update(hash="XYZ"), "64 lower-case hex"),
    ],
)
def test_malformed_envelopes_name_the_field(mutate, message):
    env = _event()
    mutate(env)
    with pytest.raises(EnvelopeError, match=message):
        verify_envelope(env)


def test_schema_rejects_what_verify_rejects():
    env = _event()
    env["seq"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(env, SCHEMA)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_hash_survives_a_round_trip_through_stored_json(payload):
    """The store keeps the payload as canonical JSON text; reading it back must rehash identically."""
    env = _event(payload=payload)
    stored = canonical_json(env["payload"]).decode("utf-8")
    again = dict(env, payload=json.loads(stored))
    verify_envelope(again)
