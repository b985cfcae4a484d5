"""Machine facts and load sampling shared by bench.failover and bench.reinsert.

The machine has 2 cores shared with other people's tests, so every result must say how loaded it
was; a number measured under a load average of 3 is not comparable with one measured idle.
"""

from __future__ import annotations

import os
import platform
import subprocess
import threading
from typing import Any


class LoadSampler:
    """Samples the 1-minute load average every few seconds in a daemon thread, so the report can
    give the peak seen during the run and not only the values at its two ends."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.before = os.getloadavg()
        self.samples: list[float] = [self.before[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 1)
        after = os.getloadavg()
        self.samples.append(after[0])
        return self.facts(after)

    def facts(self, after: tuple[float, float, float] | None = None) -> dict[str, Any]:
        after = after or os.getloadavg()
        return {
            "loadavg_before": [round(x, 2) for x in self.before],
            "loadavg_after": [round(x, 2) for x in after],
            "load1_peak": round(max(self.samples), 2),
            "load1_mean": round(sum(self.samples) / len(self.samples), 2),
        }

    def line(self) -> str:
        f = self.facts()
        return (
            f"load average (1/5/15 min) before {f['loadavg_before']}, after "
            f"{f['loadavg_after']}, 1-min peak {f['load1_peak']} on {os.cpu_count()} cores"
        )


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def machine_facts(etcd_binary: str | None = None) -> dict[str, Any]:
    """Cores, memory, OS and the versions a reader needs to reproduce a number."""
    import av
    import httpx

    import hotspare

    mem_kb = None
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "mem_total_mb": None if mem_kb is None else mem_kb // 1024,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "hotspare": hotspare.__version__,
        "pyav": av.__version__,
        "pyav_libavformat": str(av.library_versions.get("libavformat")),
        "httpx": httpx.__version__,
    }
    try:
        import uvicorn

        facts["uvicorn"] = uvicorn.__version__
    except ImportError:
        pass
    if etcd_binary:
        facts["etcd"] = _first_line([etcd_binary, "--version"])
    return facts


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: with a handful of trials an interpolated p95 would invent a value
    nobody measured."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(q * 100) * len(ordered) // 100))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
