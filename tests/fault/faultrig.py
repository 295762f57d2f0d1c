"""The fault rig: a real Mosquitto, two edge processes and two hub processes, each killable.

Fixtures are registered by conftest.py. Edges are ``tests/fault/fault_edge.py`` (the real store and publisher); hub
workers are ``checkpoint hub --config`` (one worker per process, so one can be
killed). Every test ends with ``Rig.assert_complete``: each edge fully
acknowledged, and the hub holding every event exactly once, gap-free, with the
chain re-verified from the stored rows and equal to the edge's own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from waiting import wait_until

from sync.envelope import verify_envelope
from sync.localbroker import LocalBroker, free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PG = os.environ.get("CHECKPOINT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
HUB_MAIN = "from edge.cli_hub import hub; hub()"


class Proc:
    """A subprocess with its output in a log file; ``kill9`` and ``start`` again at will."""

    def __init__(self, name: str, argv: list[str], workdir: Path, ready: str) -> None:
        self.name, self.argv, self.ready = name, argv, ready
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Proc:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                         env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"))

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
            return self.ready in self.log.read_text(errors="replace")[offset:]

        wait_until(ready, timeout, f"{self.name} ready")
        return self

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


class TcpProxy:
    """A TCP proxy in front of PostgreSQL that the test can cut (every connection reset, new ones refused)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        self.start()


class Rig:
    def __init__(self, workdir: Path, storage: str, pg_schema: str | None = None) -> None:
        self.workdir = workdir
        self.storage = storage
        self.pg_schema = pg_schema
        self.broker = LocalBroker(workdir / "broker").start()
        self.hubs: list[Proc] = []
        self.edges: dict[str, Proc] = {}
        self.events = 400

    def hub_config(self, index: int) -> Path:
        path = self.workdir / f"hub-{index}.yaml"
        path.write_text(json.dumps({  # JSON is YAML
            "id": f"hub{index}", "broker": {"url": f"mqtt://127.0.0.1:{self.broker.port}"},
            "storage": {"url": self.storage}, "workers": 1, "gap_timeout_s": 2,
        }))
        return path

    def start(self) -> Rig:
        for i in (1, 2):
            self.hubs.append(Proc(f"hub-{i}", [sys.executable, "-c", HUB_MAIN, "--config", str(self.hub_config(i))],
                                  self.workdir, "ready on"))
        for edge_id in ("edge-a", "edge-b"):
            self.edges[edge_id] = Proc(edge_id, [
                sys.executable, str(HERE / "fault_edge.py"), "--db", str(self.workdir / f"{edge_id}.db"),
                "--edge-id", edge_id, "--port", str(self.broker.port), "--events", str(self.events), "--rate", "100",
            ], self.workdir, "ready")
        for proc in [*self.hubs, *self.edges.values()]:
            proc.start()
        return self

    def stop(self) -> None:
        for proc in [*self.edges.values(), *self.hubs]:
            proc.stop()
        self.broker.stop()

    # ------------------------------------------------------------ reading both ends

    def edge_state(self, edge_id: str) -> tuple[int, int, str, list[str]]:
        """(events recorded, unacked, epoch, hashes in seq order) from the edge's own database."""
        conn = sqlite3.connect(f"file:{self.workdir / f'{edge_id}.db'}?mode=ro", uri=True, timeout=10)
        try:
            hashes = [r[0] for r in conn.execute("SELECT hash FROM outbox ORDER BY seq")]
            unacked = conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]
            epoch = dict(conn.execute("SELECT key, value FROM meta").fetchall())["edge_epoch"]
        finally:
            conn.close()
        return len(hashes), unacked, epoch, hashes

    def hub_rows(self, edge_id: str) -> list[dict[str, Any]]:
        cols = "edge_id, edge_epoch, seq, event_id, ts, type, session_id, payload, prev_hash, hash"
        if self.pg_schema is None:
            conn = sqlite3.connect(f"file:{self.storage}?mode=ro", uri=True, timeout=10)
            try:
                rows = conn.execute(f"SELECT {cols} FROM events WHERE edge_id = ? ORDER BY seq",  # noqa: S608
                                    (edge_id,)).fetchall()
            finally:
                conn.close()
        else:
            with psycopg.connect(PG, options=f"-csearch_path={self.pg_schema}") as pg:
                rows = pg.execute(f"SELECT {cols} FROM events WHERE edge_id = %s ORDER BY seq",  # noqa: S608
                                  (edge_id,)).fetchall()
        names = cols.split(", ")
        out = []
        for row in rows:
            d = dict(zip(names, row, strict=True))
            d["event_id"] = str(d["event_id"])
            d["payload"] = json.loads(d["payload"]) if isinstance(d["payload"], str) else d["payload"]
            out.append(dict(d, schema="checkpoint.event/1"))
        return out

    def hub_edges(self) -> dict[str, tuple[int, str | None]]:
        sql = "SELECT edge_id, watermark, chain_error FROM edges"
        if self.pg_schema is None:
            conn = sqlite3.connect(f"file:{self.storage}?mode=ro", uri=True, timeout=10)
            try:
                rows = conn.execute(sql).fetchall()
            finally:
                conn.close()
        else:
            with psycopg.connect(PG, options=f"-csearch_path={self.pg_schema}") as pg:
                rows = pg.execute(sql).fetchall()
        return {r[0]: (int(r[1]), r[2]) for r in rows}

    def wait_recorded_and_acked(self, timeout: float = 90.0) -> None:
        def done() -> bool:
            return all(self.edge_state(e)[:2] == (self.events, 0) for e in self.edges)

        try:
            wait_until(done, timeout, "every event recorded and acknowledged by the hub", every=0.25)
        except AssertionError:
            states = {e: self.edge_state(e)[:2] for e in self.edges}
            logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in [*self.hubs, *self.edges.values()])
            raise AssertionError(f"edges (recorded, unacked): {states}\n{logs}") from None

    def assert_complete(self) -> None:
        """Every event once, gap-free per edge, chain verified, the same events as the edge holds."""
        self.wait_recorded_and_acked()
        for edge_id in self.edges:
            count, _unacked, epoch, hashes = self.edge_state(edge_id)
            rows = self.hub_rows(edge_id)
            assert [r["seq"] for r in rows] == list(range(1, count + 1)), f"{edge_id}: not gap-free or not once"
            assert {r["edge_epoch"] for r in rows} == {epoch}
            prev = "0" * 64
            for r in rows:
                verify_envelope(r)  # the content hashes to the stored hash
                assert r["prev_hash"] == prev, f"{edge_id}: chain broken at seq {r['seq']}"
                prev = r["hash"]
            assert [r["hash"] for r in rows] == hashes, f"{edge_id}: the hub's chain differs from the edge's"
        assert self.hub_edges() == {e: (self.events, None) for e in self.edges}

    def hub_has_some(self, per_edge: int) -> bool:
        return all(len(self.hub_rows(e)) >= per_edge for e in self.edges)


@pytest.fixture
def sqlite_rig(tmp_path):
    rig = Rig(tmp_path, str(tmp_path / "hub.db"))
    try:
        yield rig.start()
    finally:
        rig.stop()


@pytest.fixture
def pg_proxy():
    url = urlsplit(PG)
    proxy = TcpProxy((url.hostname or "127.0.0.1", url.port or 5432)).start()
    yield proxy
    proxy.cut()


@pytest.fixture
def pg_rig(tmp_path, pg_proxy):
    schema = f"fault_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG}: {exc}")
    admin.execute(f"CREATE SCHEMA {schema}")  # generated name, not input
    url = urlsplit(PG)
    netloc = (f"{url.username}@" if url.username else "") + f"127.0.0.1:{pg_proxy.port}"
    proxied = urlunsplit(url._replace(netloc=netloc, query=f"options=-csearch_path%3D{schema}"))
    rig = Rig(tmp_path, proxied, pg_schema=schema)
    try:
        yield rig.start()
    finally:
        rig.stop()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
