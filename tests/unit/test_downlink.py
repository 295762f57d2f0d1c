"""Signed downlink documents: sign/verify round trip and every rejection reason. Pure, no I/O but key files."""

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync import downlink
from sync.downlink import DownlinkRejected
from sync.envelope import canonical_json

NOW = 1_795_000_000.0  # 2026-11-18
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
TRUSTED = {downlink.public_key_id(KEY.public_key()): KEY.public_key()}

PLATES = {
    "entries": [
        {"type": "plate", "value": "KZ123ABC02", "reason": "stolen vehicle", "source": "police"},
        {"type": "document", "value": "L898902C3", "reason": "lost passport", "source": "interpol-sltd"},
        {"type": "name_dob", "value": "ERIKSSON ANNA MARIA|1974-08-12", "reason": "wanted", "source": "court"},
        {"type": "container", "value": "CSQU3054383", "reason": "tip-off", "source": "customs-intel"},
    ]
}


def document(**overrides) -> dict:
    doc = downlink.build(kind="watchlist", name="plates", version=3, body=PLATES, issued_at=NOW - 60)
    doc.update(overrides)
    return doc


def signed(key: Ed25519PrivateKey = KEY, **overrides) -> dict:
    return downlink.sign(document(**overrides), key)


def check(doc, *, edge_id: str = "edge-1", current_version: int | None = 2, now: float = NOW):
    return downlink.verify(doc, TRUSTED, edge_id=edge_id, current_version=current_version, now=now)


def rejected(doc, **kw) -> DownlinkRejected:
    with pytest.raises(DownlinkRejected) as info:
        check(doc, **kw)
    assert info.value.reason in downlink.REASONS
    return info.value


# ---------------------------------------------------------------- accepted


def test_round_trip_through_the_wire():
    doc = signed()
    wire = json.dumps(doc, indent=2).encode()  # any spacing, any key order: the canonical form is signed
    verified = check(downlink.parse(wire))
    assert (verified.kind, verified.name, verified.version) == ("watchlist", "plates", 3)
    assert verified.body == PLATES
    assert verified.key_id == downlink.public_key_id(KEY.public_key())
    assert verified.targets == ("*",)
    assert verified.hash == downlink.content_hash(doc)
    assert verified.document["signature"] == doc["signature"]


def test_signature_covers_everything_but_itself():
    doc = signed()
    message = canonical_json({k: v for k, v in doc.items() if k != "signature"})
    KEY.public_key().verify(base64.b64decode(doc["signature"]), message)  # raises if not


def test_key_id_is_sha256_prefix_of_raw_public_key():
    import hashlib

    raw = KEY.public_key().public_bytes_raw()
    assert downlink.public_key_id(KEY.public_key()) == hashlib.sha256(raw).hexdigest()[:16]


def test_first_version_and_targeted_edge_and_config_kind():
    doc = downlink.sign(
        downlink.build(
            kind="config",
            name="rules",
            version=1,
            body={"weight_tolerance": 0.05},
            issued_at=NOW,
            targets=["edge-7", "edge-1"],
            expires_at=NOW + 3600,
        ),
        KEY,
    )
    verified = check(doc, current_version=None)
    assert verified.kind == "config" and verified.body == {"weight_tolerance": 0.05}
    assert verified.expires_at is not None


def test_resigning_replaces_key_id_and_signature():
    doc = signed(OTHER_KEY)
    again = downlink.sign(doc, KEY)
    assert again["key_id"] == downlink.public_key_id(KEY.public_key())
    check(again)


def test_signing_a_malformed_document_refuses():
    with pytest.raises(DownlinkRejected) as info:
        downlink.sign(document(version=0), KEY)
    assert info.value.reason == "malformed"


# ---------------------------------------------------------------- rejected


def test_tampered_body():
    doc = signed()
    doc["body"]["entries"][0]["value"] = "KZ999ZZZ02"
    assert rejected(doc).reason == "bad_signature"


def test_entry_removed_from_body():
    doc = signed()
    doc["body"]["entries"].pop()
    assert rejected(doc).reason == "bad_signature"


def test_tampered_version():
    doc = signed()
    doc["version"] = 99
    assert rejected(doc).reason == "bad_signature"


def test_tampered_targets_and_expiry():
    doc = signed(targets=["edge-9"])
    doc["targets"] = ["*"]
    assert rejected(doc).reason == "bad_signature"
    doc = signed(expires_at="2026-11-18T00:00:00.000Z")
    del doc["expires_at"]
    assert rejected(doc).reason == "bad_signature"


def test_signature_from_an_untrusted_key():
    err = rejected(signed(OTHER_KEY))
    assert err.reason == "unknown_key"
    assert downlink.public_key_id(OTHER_KEY.public_key()) in err.detail


def test_untrusted_key_claiming_a_trusted_key_id():
    doc = signed(OTHER_KEY)
    doc["key_id"] = downlink.public_key_id(KEY.public_key())
    assert rejected(doc).reason == "bad_signature"


def test_signature_garbage():
    doc = signed()
    doc["signature"] = "not base64!!"
    assert rejected(doc).reason == "bad_signature"
    doc["signature"] = base64.b64encode(b"\0" * 10).decode()
    assert rejected(doc).reason == "bad_signature"
    doc["signature"] = base64.b64encode(b"\0" * 64).decode()
    assert rejected(doc).reason == "bad_signature"


@pytest.mark.parametrize("strip", ["signature", "key_id", "both", "empty"])
def test_unsigned(strip):
    doc = signed()
    if strip in ("signature", "both"):
        del doc["signature"]
    if strip in ("key_id", "both"):
        del doc["key_id"]
    if strip == "empty":
        doc["signature"] = ""
    assert rejected(doc).reason == "unsigned"


def test_unsigned_plain_document():
    assert rejected(document()).reason == "unsigned"


def test_wrong_edge():
    err = rejected(signed(targets=["edge-2", "edge-3"]))
    assert err.reason == "not_for_this_edge"


@pytest.mark.parametrize("current", [3, 4, 100])
def test_replayed_or_rolled_back_version(current):
    assert rejected(signed(), current_version=current).reason == "stale_version"


def test_expired():
    doc = signed(expires_at="2026-11-18T08:00:00.000Z")
    assert rejected(doc, now=downlink.parse_ts("2026-11-18T08:00:00.000Z", "t")).reason == "expired"
    check(doc, now=downlink.parse_ts("2026-11-18T07:59:59.999Z", "t"))


def test_stale_is_reported_before_expired():
    # A redelivered active document that has since expired is a duplicate, not a new failure.
    doc = signed(expires_at="2026-11-01T00:00:00.000Z")
    assert rejected(doc, current_version=3).reason == "stale_version"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2, 3]",
        b'"a string"',
        b'{"a": 1, "a": 2}',
        b'{"version": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_bytes(raw):
    with pytest.raises(DownlinkRejected) as info:
        downlink.parse(raw)
    assert info.value.reason == "malformed"


def test_too_large():
    with pytest.raises(DownlinkRejected) as info:
        downlink.parse(b"{}" + b" " * 100, max_bytes=50)
    assert info.value.reason == "malformed"


def test_duplicate_key_inside_body():
    with pytest.raises(DownlinkRejected):
        downlink.parse(b'{"body": {"entries": [], "entries": []}}')


@pytest.mark.parametrize(
    "overrides",
    [
        {"schema": "checkpoint.downlink/2"},
        {"kind": "firmware"},
        {"name": "Plates!"},
        {"version": 0},
        {"version": True},
        {"version": "3"},
        {"issued_at": "yesterday"},
        {"issued_at": "2026-13-45T00:00:00.000Z"},
        {"expires_at": 1795000000},
        {"targets": []},
        {"targets": "*"},
        {"targets": [""]},
        {"body": []},
        {"body": {"entries": [{"type": "plate", "value": "X"}]}},
        {"body": {"entries": [{"type": "ship", "value": "X", "reason": "", "source": ""}]}},
        {"body": {"entries": [{"type": "plate", "value": "  ", "reason": "", "source": ""}]}},
        {"body": {"entries": [{"type": "plate", "value": "X", "reason": 1, "source": ""}]}},
        {"body": {"entries": {}}},
        {"body": {"entries": [], "extra": 1}},
        {"extra_field": 1},
    ],
)
def test_malformed_shape_even_when_signed(overrides):
    # Signed by the trusted key (as a buggy hub might), still refused before anything is applied.
    doc = document(**overrides)
    doc["key_id"] = downlink.public_key_id(KEY.public_key())
    doc["signature"] = base64.b64encode(KEY.sign(downlink.signed_bytes(doc))).decode()
    assert rejected(doc).reason == "malformed"


def test_not_an_object():
    assert rejected([1, 2]).reason == "malformed"


def test_bad_key_id_type():
    doc = signed()
    doc["key_id"] = 12345
    assert rejected(doc).reason == "malformed"


def test_unknown_reason_code_is_a_bug():
    with pytest.raises(ValueError):
        DownlinkRejected("nope")


# ---------------------------------------------------------------- key files


def test_key_files_round_trip(tmp_path: Path):
    private_key, public_key = downlink.generate_keypair()
    priv_path, pub_path = tmp_path / "hub.key", tmp_path / "hub.pub"
    downlink.save_private_key(private_key, priv_path)
    downlink.save_public_key(public_key, pub_path)
    assert stat.S_IMODE(priv_path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in priv_path.read_bytes()
    loaded = downlink.load_private_key(priv_path)
    pub = downlink.load_public_key(pub_path)
    assert downlink.public_key_id(pub) == downlink.public_key_id(loaded.public_key())
    trusted = downlink.load_trusted_keys([pub_path])
    doc = downlink.sign(document(), loaded)
    downlink.verify(doc, trusted, edge_id="edge-1", current_version=None, now=NOW)


def test_private_key_mode_is_exact_whatever_the_umask(tmp_path: Path):
    old = os.umask(0)
    try:
        downlink.save_private_key(KEY, tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_refuses_to_overwrite_unless_asked(tmp_path: Path):
    path = tmp_path / "hub.key"
    downlink.save_private_key(KEY, path)
    before = path.read_bytes()
    with pytest.raises(downlink.KeyFileError, match="refusing to overwrite"):
        downlink.save_private_key(OTHER_KEY, path)
    assert path.read_bytes() == before
    downlink.save_private_key(OTHER_KEY, path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = downlink.load_private_key(path)
    assert downlink.public_key_id(loaded.public_key()) == downlink.public_key_id(OTHER_KEY.public_key())
    assert [p.name for p in tmp_path.iterdir()] == ["hub.key"]  # no temp file left behind


def test_password_protected_private_key(tmp_path: Path):
    path = tmp_path / "hub.key"
    downlink.save_private_key(KEY, path, password=b"correct horse")
    assert b"ENCRYPTED" in path.read_bytes()
    downlink.load_private_key(path, password=b"correct horse")
    with pytest.raises(downlink.KeyFileError) as info:
        downlink.load_private_key(path, password=b"wrong")
    assert "correct horse" not in str(info.value)


def test_loading_refuses_a_world_readable_private_key(tmp_path: Path):
    path = tmp_path / "hub.key"
    downlink.save_private_key(KEY, path)
    path.chmod(0o644)
    with pytest.raises(downlink.KeyFileError, match="chmod 600"):
        downlink.load_private_key(path)
    downlink.load_private_key(path, allow_open_permissions=True)


def test_key_file_errors_do_not_echo_the_file(tmp_path: Path):
    path = tmp_path / "junk.pem"
    path.write_text("-----BEGIN PUBLIC KEY-----\nc2VjcmV0LWxvb2tpbmctYnl0ZXM=\n-----END PUBLIC KEY-----\n")
    with pytest.raises(downlink.KeyFileError) as info:
        downlink.load_public_key(path)
    assert "c2VjcmV0" not in str(info.value)
    with pytest.raises(downlink.KeyFileError):
        downlink.load_public_key(tmp_path / "missing.pem")


def test_public_key_of_another_algorithm_is_refused(tmp_path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    path = tmp_path / "ec.pub"
    path.write_bytes(pem)
    with pytest.raises(downlink.KeyFileError, match="not an Ed25519"):
        downlink.load_public_key(path)
