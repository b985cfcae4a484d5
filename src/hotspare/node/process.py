"""Run a `hotspare node` as a child process and wait for it to be ready; crash it on purpose.

The demo and the end-to-end tests start nodes the same way, through this module, so what the tests
exercise is what an operator runs.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hotspare.node.runtime import READY_PREFIX


@dataclass
class NodeProcess:
    """One node: its config file, data dir and (while running) process and URL."""

    name: str
    config_path: Path
    data_dir: Path
    token: str
    log_path: Path
    process: subprocess.Popen[str] | None = None
    url: str | None = None
    # How to run `hotspare`: this interpreter's package by default; an installed copy's script
    # (e.g. a venv's bin/hotspare) to test what a wheel installs.
    command: tuple[str, ...] = (sys.executable, "-m", "hotspare")
    _lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("a", encoding="utf-8")
        self._lines = queue.Queue()
        self.process = subprocess.Popen(
            [*self.command, "node", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        lines = self._lines
        stdout = self.process.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"node {self.name} exited with {self.process.returncode}; "
                    f"see {self.log_path}:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line.startswith(READY_PREFIX):
                self.url = json.loads(line[len(READY_PREFIX) :])["url"]
                return
        self.kill()
        raise TimeoutError(f"node {self.name} not ready after {timeout} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no cleanup runs, exactly like a power cut of the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(
            getattr(signal, "CTRL_C_EVENT", signal.SIGINT) if os.name == "nt" else signal.SIGINT
        )
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def freeze(self) -> None:
        """SIGSTOP: a hung machine (POSIX only; test and demo tooling)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)  # type: ignore[attr-defined,unused-ignore]

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)  # type: ignore[attr-defined,unused-ignore]
