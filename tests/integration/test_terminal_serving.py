"""Serving the terminal: TLS, a port already taken, and `checkpoint users` changes chained by the terminal."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import sqlite3
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.config import parse_config
from edge.lanes import LaneService
from edge.store import Store
from edge.web.server import Terminal, TerminalError

CONFIG = """
site: {{id: SERVE-TEST}}
edge: {{id: serve-edge}}
lanes: [{{id: lane-1}}]
store: {{path: data/edge.db, evidence_dir: data/evidence}}
terminal: {{host: 127.0.0.1, port: {port}{tls}}}
"""
CLI = [sys.executable, "-m", "edge.cli"]


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "terminal.crt", folder / "terminal.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_terminal_over_tls_sets_secure_cookies(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    cfg = parse_config(CONFIG.format(port=0, tls=f", tls_cert: {cert}, tls_key: {key}"), tmp_path / "edge.yaml")
    assert cfg.terminal is not None
    store = Store(cfg.store.path, cfg.store.evidence_dir, cfg.edge.id).open()
    lanes = LaneService(cfg.lanes, store).start()
    terminal = Terminal(cfg.terminal, lanes, store, edge_id=cfg.edge.id).start()
    try:
        assert terminal.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
            response = client.get(terminal.url + "login")
        assert response.status_code == 200
        assert "max-age=31536000" in response.headers["strict-transport-security"]
        assert "Secure" in response.headers["set-cookie"]
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
            httpx.get(terminal.url.replace("https://", "http://") + "login", timeout=5)
    finally:
        terminal.stop()
        lanes.stop()
        store.close()


def test_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = parse_config(CONFIG.format(port=port, tls=""), tmp_path / "edge.yaml")
        assert cfg.terminal is not None
        store = Store(cfg.store.path, cfg.store.evidence_dir, cfg.edge.id).open()
        lanes = LaneService(cfg.lanes, store).start()
        try:
            with pytest.raises(TerminalError, match=f"127.0.0.1:{port}: cannot listen there"):
                Terminal(cfg.terminal, lanes, store, edge_id=cfg.edge.id).start()
        finally:
            lanes.stop()
            store.close()
        from edge.runtime import Runtime

        runtime = Runtime(cfg)  # `checkpoint run` reports the same one line and leaves nothing running
        with pytest.raises(TerminalError, match="cannot listen there"):
            runtime.start()


def test_users_cli_changes_are_chained_as_audit_events(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(CONFIG.format(port=0, tls=""), encoding="utf-8")

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "users", *args], input=stdin, capture_output=True, text=True, timeout=60,
                              check=False)

    added = cli("add", "anna", "--role", "inspector", "--password-stdin", "--config", str(config),
                stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    db = tmp_path / "data" / "edge.db"
    assert cli("add", "anna", "--role", "inspector", "--password-stdin", "--db", str(db),
               stdin="another password\n").stderr.strip() == "error: user 'anna' exists already"
    short = cli("add", "boris", "--role", "supervisor", "--password-stdin", "--db", str(db), stdin="short\n")
    assert short.returncode == 2 and "too short" in short.stderr
    assert cli("add", "carl", "--role", "janitor", "--password-stdin", "--db", str(db)).returncode == 2
    assert cli("disable", "anna", "--db", str(db)).returncode == 0
    assert cli("disable", "nobody", "--db", str(db)).stderr.strip() == "error: no user 'nobody'"
    listed = [json.loads(line) for line in cli("list", "--json", "--db", str(db)).stdout.splitlines()]
    assert [(u["username"], u["role"], u["disabled"]) for u in listed] == [("anna", "inspector", True)]
    conn = sqlite3.connect(db)
    try:
        stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    finally:
        conn.close()
    assert stored.startswith("$argon2id$") and "a long password" not in stored

    # A terminal starting on this store chains the changes made meanwhile, once each.
    cfg = parse_config(config.read_text(), config)
    assert cfg.terminal is not None
    store = Store(cfg.store.path, cfg.store.evidence_dir, cfg.edge.id).open()
    lanes = LaneService(cfg.lanes, store).start()
    terminal = Terminal(cfg.terminal, lanes, store, edge_id=cfg.edge.id).start()
    terminal.stop()
    lanes.stop()
    store.close()
    conn = sqlite3.connect(db)
    try:
        audits = conn.execute("SELECT actor, action, target FROM audit_log WHERE action LIKE 'user.%' ORDER BY id")
        rows = [(a.split(":")[0], b, c) for a, b, c in audits]
        pending = conn.execute("SELECT count(*) FROM account_audit_pending WHERE recorded_seq IS NULL").fetchone()[0]
    finally:
        conn.close()
    assert rows == [("cli", "user.add", "anna"), ("cli", "user.disable", "anna")]
    assert pending == 0


def test_bench_terminal_times_every_vehicle(tmp_path: Path) -> None:
    from edge.web.bench import run_terminal_bench

    figures = run_terminal_bench(vehicles=3, gap_s=0.1, directory=tmp_path)
    assert figures["vehicles"] == 3
    for key in ("read_to_stream", "read_to_panel"):
        assert 0 < figures[key]["p50_ms"] <= figures[key]["p95_ms"] <= figures[key]["max_ms"]
    # each vehicle opened its own session, chained in the store
    conn = sqlite3.connect(tmp_path / "data" / "edge.db")
    try:
        opened = conn.execute("SELECT count(*) FROM outbox WHERE type = 'session.opened'").fetchone()[0]
    finally:
        conn.close()
    assert opened == 3


def test_runtime_without_terminal_still_chains_account_changes(tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    from edge.runtime import Runtime
    from edge.web.accounts import AccountStore

    text = CONFIG.format(port=0, tls="").split("terminal:")[0]  # no terminal section
    cfg = parse_config(text, tmp_path / "edge.yaml")
    assert cfg.terminal is None
    with AccountStore(cfg.store.path, edge_id=cfg.edge.id,
                      hasher=PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)) as accounts:
        accounts.add("tech", "technician", "a long password", actor="cli:root")
    runtime = Runtime(cfg)
    runtime.start()
    runtime.stop()
    conn = sqlite3.connect(cfg.store.path)
    try:
        rows = conn.execute("SELECT actor, action, target FROM audit_log WHERE action = 'user.add'").fetchall()
    finally:
        conn.close()
    assert rows == [("cli:root", "user.add", "tech")]
