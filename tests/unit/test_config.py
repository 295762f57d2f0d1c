import os
from pathlib import Path

import pytest

from edge.config import load_config
from edge.errors import ConfigError

REPO = Path(__file__).parents[2]

GOOD = """\
site:
  id: KZ-TEST
edge:
  id: edge-1
lanes:
  - id: lane-1
    cameras:
      - id: xray-1
        url: sim://xray?seed=3&fps=2
store:
  path: data/edge.db
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == 2
    return str(info.value)


def test_example_config_in_deploy_is_valid(monkeypatch):
    monkeypatch.setenv("CHECKPOINT_MQTT_PASSWORD", "not-a-real-password")
    cfg = load_config(REPO / "deploy" / "edge.example.yaml")
    assert cfg.lanes and cfg.edge.id


def test_relative_paths_are_taken_from_the_config_folder(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.store.path == (tmp_path / "data" / "edge.db").resolve()
    assert cfg.store.evidence_dir == (tmp_path / "data" / "evidence").resolve()


def test_unknown_key_names_file_line_and_key(tmp_path):
    path = write(tmp_path, GOOD.replace("  path: data/edge.db", "  path: data/edge.db\n  pathh: x"))
    msg = error_of(path)
    assert msg.startswith(f"{path}:12: store.pathh:"), msg
    assert "Extra inputs are not permitted" in msg


def test_bad_camera_url_names_line_key_and_grammar(tmp_path):
    path = write(tmp_path, GOOD.replace("fps=2", "fsp=2"))
    msg = error_of(path)
    assert msg.startswith(f"{path}:9: lanes[0].cameras[0].url:"), msg
    assert "sim://xray?" in msg  # the grammar is shown


def test_unknown_scheme_lists_known_ones(tmp_path):
    msg = error_of(write(tmp_path, GOOD.replace("sim://xray?seed=3&fps=2", "ftp://cam/1")))
    assert "unknown camera scheme 'ftp'" in msg and "folder://" in msg


def test_missing_required_section_points_at_parent(tmp_path):
    msg = error_of(write(tmp_path, GOOD.replace("edge:\n  id: edge-1\n", "")))
    assert msg.startswith(f"{tmp_path / 'edge.yaml'}:1: edge: Field required"), msg


def test_yaml_syntax_error_has_a_line(tmp_path):
    msg = error_of(write(tmp_path, GOOD + "  - [unclosed\n"))
    assert "YAML syntax error" in msg and f"{tmp_path / 'edge.yaml'}:" in msg


def test_duplicate_key_is_refused(tmp_path):
    msg = error_of(write(tmp_path, GOOD.replace("site:\n  id: KZ-TEST", "site:\n  id: KZ-TEST\n  id: KZ-OTHER")))
    assert msg == f"{tmp_path / 'edge.yaml'}:3: key 'id' appears twice"


def test_duplicate_camera_ids_are_refused(tmp_path):
    text = GOOD.replace("store:", "  - id: lane-2\n    cameras:\n      - id: xray-1\n        url: sim://xray\nstore:")
    assert "device id 'xray-1' is used twice" in error_of(write(tmp_path, text))


def test_unreadable_file(tmp_path):
    msg = error_of(tmp_path / "missing.yaml")
    assert "missing.yaml: cannot read config" in msg


def test_not_a_mapping(tmp_path):
    assert "must be a mapping" in error_of(write(tmp_path, "- just\n- a list\n"))


SYNC = GOOD + "sync:\n  enabled: true\n  username: edge-1\n  password: {}\n"


def test_secret_from_environment_never_shows(tmp_path, monkeypatch):
    monkeypatch.setenv("CP_TEST_SECRET", "hunter2-secret")
    cfg = load_config(write(tmp_path, SYNC.format("{env: CP_TEST_SECRET}")))
    assert cfg.sync.password is not None
    assert cfg.sync.password.get_secret_value() == "hunter2-secret"
    for text in (repr(cfg), str(cfg), cfg.model_dump_json()):
        assert "hunter2" not in text


def test_secret_from_systemd_credentials(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret-from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = load_config(write(tmp_path, SYNC.format("{credential: mqtt-password}")))
    assert cfg.sync.password is not None
    assert cfg.sync.password.get_secret_value() == "s3cret-from-systemd"


def test_literal_secret_in_file_is_refused_without_echoing_it(tmp_path):
    msg = error_of(write(tmp_path, SYNC.format("hunter2-literal")))
    assert "may not be written in the config file" in msg
    assert "hunter2" not in msg


def test_missing_environment_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("CP_TEST_UNSET", raising=False)
    msg = error_of(write(tmp_path, SYNC.format("{env: CP_TEST_UNSET}")))
    assert "sync.password" in msg and "CP_TEST_UNSET is not set" in msg


def test_mqtts_requires_tls(tmp_path):
    msg = error_of(write(tmp_path, GOOD + "sync:\n  broker: mqtts://hub.example:8883\n"))
    assert "needs a tls section" in msg


def test_no_environment_leak_between_tests():
    assert "CP_TEST_SECRET" not in os.environ
