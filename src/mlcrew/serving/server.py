"""Run the app in a background thread on 127.0.0.1 (for the demo, tests and notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

from mlcrew.errors import MlcrewError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int) -> int:
    """The port to listen on (a free one for 0); a clear error if it is taken."""
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        raise MlcrewError(
            f"cannot listen on host {host!r}: no such address; use --host 127.0.0.1"
        ) from None
    if port == 0:
        return free_port(host)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise MlcrewError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; stop what uses it or "
                "pick another port with --port N (0 for any free one)"
            ) from None
    return port


class BackgroundServer:
    """`with BackgroundServer(app) as srv: httpx.get(srv.url + "/healthz")`"""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.host = host
        self.port = check_port(host, port)
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="mlcrew-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise MlcrewError(f"the server did not start on {self.url}; is the port free?")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C)."""
        try:
            while self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
