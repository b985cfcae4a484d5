"""The per-camera frame log: the ground truth tests compare recordings against.

One JSON Lines file per camera, `<log-dir>/<camera-id>.jsonl`, one line per frame the camera
captured, whether or not anyone received it::

    {"frame": 1234, "wall_us": 1764104400123456, "online": true, "delivered": true}

`online` is false while the camera is switched offline through the control API; `delivered` is true
when the frame was handed to a live RTSP stream (online and at least one client session). Lines are
flushed about once a second, so a reader may see a final partial line; readers skip it. Stdlib only:
the product venv reads these files too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True, slots=True)
class FrameRecord:
    frame: int
    wall_us: int
    online: bool
    delivered: bool


class FrameLogWriter:
    """Buffers lines in memory until flush(), so the frame clock never waits on the disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._pending: list[str] = []

    def add(self, frame: int, wall_us: int, online: bool, delivered: bool) -> None:
        self._pending.append(
            f'{{"frame": {frame}, "wall_us": {wall_us}, '
            f'"online": {"true" if online else "false"}, '
            f'"delivered": {"true" if delivered else "false"}}}\n'
        )

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            self._file.write("".join(lines))
        self._file.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()


def log_path(log_dir: Path, camera_id: str) -> Path:
    return log_dir / f"{camera_id}.jsonl"


def read_frame_log(path: Path) -> Iterator[FrameRecord]:
    """Complete lines only; a line being written while we read is left for the next read."""
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                return
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                return
            yield FrameRecord(
                int(row["frame"]), int(row["wall_us"]), bool(row["online"]), bool(row["delivered"])
            )
