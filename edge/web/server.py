"""Serving the terminal inside the runtime process: uvicorn in a thread, started and stopped with the Runtime.

The terminal shares the runtime's LaneService and Store; account changes made by
``checkpoint users`` meanwhile are chained as ``audit`` events every few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from edge.config import TerminalConfig
from edge.errors import EdgeError, StoreError
from edge.store import Store
from edge.web.accounts import AccountStore
from edge.web.app import LaneServiceLike, WebSettings, create_app
from edge.web.security import Auditor

log = logging.getLogger(__name__)

DRAIN_EVERY_S = 5.0


class TerminalError(EdgeError):
    """The terminal could not be served (port taken, bad certificate)."""


class TerminalServer:
    """uvicorn serving ``app`` on a background thread; ``url`` is known once ``start`` returns."""

    def __init__(self, app: Any, host: str, port: int, *, ssl_certfile: Path | None = None,
                 ssl_keyfile: Path | None = None, on_tick: Callable[[], None] | None = None) -> None:
        self.app = app
        self.host = host
        self.scheme = "https" if ssl_certfile else "http"
        self.config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
            timeout_graceful_shutdown=2, proxy_headers=False, server_header=False,
        )
        self.server = uvicorn.Server(self.config)
        self.port = port
        self.on_tick = on_tick
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: str | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{self.scheme}://{host}:{self.port}/"

    def start(self, timeout: float = 15.0) -> TerminalServer:
        self._thread = threading.Thread(target=self._serve, name="terminal-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                reason = f": {self._error}" if self._error else " (port in use, or bad certificate?)"
                raise TerminalError(f"terminal did not start on {self.host}:{self.config.port}{reason}")
            time.sleep(0.02)
        sockets = [s for srv in self.server.servers for s in (srv.sockets or ())]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        if self.on_tick is not None:
            self._ticker = threading.Thread(target=self._tick, name="terminal-audit", daemon=True)
            self._ticker.start()
        return self

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit:  # uvicorn exits when it cannot bind (and logs the OS error)
            self._error = "cannot listen there: port in use or address not available"
        except BaseException as exc:  # reported by start()
            self._error = f"{type(exc).__name__}: {exc}"

    def _tick(self) -> None:
        assert self.on_tick is not None
        while not self._stop.wait(DRAIN_EVERY_S):
            try:
                self.on_tick()
            except Exception:  # the next tick tries again
                log.exception("terminal housekeeping failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        terminal = getattr(getattr(self.app, "state", None), "terminal", None)
        if terminal is not None:
            terminal.stopping.set()  # ends live streams so shutdown does not wait on them
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._ticker is not None:
            self._ticker.join(timeout)


class Terminal:
    """The terminal of one runtime: accounts, app and server together."""

    def __init__(self, cfg: TerminalConfig, lanes: LaneServiceLike, store: Store, *, edge_id: str,
                 site_name: str = "", clock: Callable[[], float] = time.time) -> None:
        self.accounts = AccountStore(
            store.path, edge_id=edge_id, clock=clock, max_user_failures=cfg.login_max_failures,
            max_ip_failures=cfg.login_max_failures_ip, failure_window_s=cfg.login_window_s,
        )
        self.auditor = Auditor(store, clock)
        secure = cfg.secure_cookie if cfg.secure_cookie is not None else cfg.tls_cert is not None
        settings = WebSettings(session_lifetime_s=cfg.session_lifetime_min * 60.0, secure_cookie=secure,
                               site_name=site_name, banner=cfg.banner)
        self.app = create_app(lanes, self.accounts, self.auditor, settings, clock=clock)
        self.server = TerminalServer(self.app, cfg.host, cfg.port, ssl_certfile=cfg.tls_cert,
                                     ssl_keyfile=cfg.tls_key, on_tick=self._drain)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Terminal:
        self.accounts.open()
        try:
            self._drain()
            self.server.start()
        except BaseException:
            self.accounts.close()
            raise
        log.info("inspector terminal at %s", self.url)
        return self

    def _drain(self) -> None:
        try:
            self.auditor.drain_pending(self.accounts)
        except StoreError as exc:
            log.error("account changes not yet chained: %s", exc)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stop(timeout)
        self._drain()
        self.accounts.close()
