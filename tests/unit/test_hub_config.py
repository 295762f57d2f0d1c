"""The hub's YAML config: the shipped example validates; mistakes name the line and key."""

from pathlib import Path

import pytest

from sync.hubconfig import HubConfigError, load_hub_config, redact_url

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "hub.example.yaml"


def test_the_shipped_example_is_valid():
    cfg = load_hub_config(EXAMPLE)
    assert cfg.broker.url.startswith("mqtts://") and cfg.broker.tls is not None
    assert cfg.broker.settings().port == 8883 and cfg.broker.settings().tls is not None
    assert cfg.storage.url.startswith("postgresql://")
    assert cfg.forward is not None and cfg.forward.spec().types == ("alert.*", "session.risk", "decision")
    assert cfg.downlink.signing_key == Path("/etc/checkpoint-hub/downlink.key")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path):
    cfg = load_hub_config(write(tmp_path, "storage: {url: data/hub.db}\ndownlink: {signing_key: k.key}\n"))
    assert cfg.broker.url == "mqtt://127.0.0.1:1883" and cfg.workers == 1 and cfg.gap_timeout_s == 10
    assert cfg.storage.target(tmp_path) == str(tmp_path / "data" / "hub.db")
    assert cfg.downlink.signing_key == tmp_path / "k.key"
    assert cfg.forward is None


@pytest.mark.parametrize(("text", "message"), [
    ("workers: 2\nbroker:\n  url: mqtts://h:8883\n", "hub.yaml:2: broker: mqtts:// needs a tls section"),
    ("storage:\n  url: postgresql://u:secret@h/db\n", "hub.yaml:2: storage.url: no password in the URL"),
    ("storage:\n  url: http://x\n", "storage.url: a SQLite file path, or a postgresql:// URL"),
    ("workers: 0\n", "hub.yaml:1: workers: Input should be greater than or equal to 1"),
    ("gap_timout_s: 3\n", "hub.yaml:1: gap_timout_s: Extra inputs are not permitted"),
    ("forward:\n  partner_id: p\n  broker: {}\n  types: ['DROP TABLE']\n", "forward.types.0: 'DROP TABLE' is not"),
    ("forward:\n  partner_id: p\n  broker: {}\n  types: []\n", "forward.types: List should have at least 1"),
    ("- a\n", "hub.yaml:1: the hub config must be a mapping"),
    ("a: [\n", "YAML syntax error"),
])
def test_mistakes_name_the_line_and_key(tmp_path, text, message):
    with pytest.raises(HubConfigError) as err:
        load_hub_config(write(tmp_path, text))
    assert message in str(err.value)
    assert "secret" not in str(err.value)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(HubConfigError, match="cannot read"):
        load_hub_config(tmp_path / "nope.yaml")


def test_redact_url():
    assert redact_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("/var/lib/hub.db") == "/var/lib/hub.db"
