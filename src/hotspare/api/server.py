"""Running the API under uvicorn inside the node process, stoppable, on a fixed or free port.

The node daemon and end-to-end tests both need the server in a thread they can stop cleanly and,
with port 0, to learn which port it got; uvicorn's `run()` offers neither.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI


class ApiServer:
    """`start()` returns once the socket is listening; `stop()` finishes in-flight requests."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8600) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="hotspare-api", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the API server stopped while starting (port in use?)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API server did not start within {timeout} s")
            time.sleep(0.01)

    @property
    def port(self) -> int:
        """The bound port (useful after asking for port 0)."""
        for server in self._server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("the API server is not listening")

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
