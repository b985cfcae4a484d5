"""Start real `hotspare node` processes for end-to-end tests, and crash them like a power cut would."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from hotspare.node.runtime import READY_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[2]


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
    _lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("a", encoding="utf-8")
        self._lines = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hotspare", "node", "--config", str(self.config_path)],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO_ROOT,
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
                raise RuntimeError(f"node {self.name} exited with {self.process.returncode}; "
                                   f"see {self.log_path}:\n{self.log_path.read_text()[-3000:]}")
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line.startswith(READY_PREFIX):
                self.url = json.loads(line[len(READY_PREFIX):])["url"]
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
        self.process.send_signal(signal.SIGINT if os.name != "nt" else signal.CTRL_C_EVENT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


def make_node(tmp: Path, name: str, cameras: Sequence[tuple[str, str]], *,
              segment_seconds: float = 2.0, transport: str = "tcp",
              token: str = "test-token-0123456789") -> NodeProcess:
    """Write a node config for `cameras` [(id, rtsp url)] under tmp/name and return the (stopped) node."""
    base = tmp / name
    base.mkdir(parents=True, exist_ok=True)
    config = {
        "name": name,
        "data_dir": str(base / "data"),
        "api": {"host": "127.0.0.1", "port": 0, "token": token},
        "recording": {"segment_seconds": segment_seconds, "reconnect_initial_seconds": 0.2,
                      "reconnect_max_seconds": 1.0, "open_timeout_seconds": 3.0},
        "retention": {"max_age_days": 30, "min_free_bytes": 0},
        "cameras": [{"id": cid, "url": url, "transport": transport} for cid, url in cameras],
    }
    path = base / "node.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return NodeProcess(name=name, config_path=path, data_dir=base / "data", token=token,
                       log_path=base / "node.log")
