"""Run the dashboard app with uvicorn: in a background thread (inside ``checkpoint hub`` or the demo)
or in the foreground (``checkpoint dashboard``). The socket is bound here, so port 0 works and the
real address is known before the server starts.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port); ``ValueError`` with a clear message."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class DashboardServer:
    def __init__(self, app: Any, listen: str = "127.0.0.1:8080", *, ssl_certfile: str | None = None,
                 ssl_keyfile: str | None = None) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise OSError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        self.host, self.port = host, self.sock.getsockname()[1]
        self.tls = ssl_certfile is not None
        config = uvicorn.Config(app, log_level="warning", access_log=False, ssl_certfile=ssl_certfile,
                                ssl_keyfile=ssl_keyfile, timeout_graceful_shutdown=3, proxy_headers=False)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def run(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM (uvicorn's handlers) or ``stop()``."""
        self.server.run(sockets=[self.sock])

    def start(self, timeout: float = 15.0) -> DashboardServer:
        self._thread = threading.Thread(target=self.run, name="dashboard-http", daemon=True)
        self._thread.start()
        waited = threading.Event()
        while not self.server.started and self._thread.is_alive():
            waited.wait(0.02)
            timeout -= 0.02
            if timeout <= 0:
                raise TimeoutError("dashboard did not start")
        if not self.server.started:
            raise RuntimeError("dashboard stopped while starting (see the log)")
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()


def serve(app: Any, listen: str = "127.0.0.1:8080", *, background: bool = True, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> DashboardServer:
    """Start serving ``app``; with ``background=False`` block until stopped."""
    server = DashboardServer(app, listen, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    if background:
        return server.start()
    server.run()
    return server
