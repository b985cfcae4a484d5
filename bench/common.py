"""What every benchmark shares: the result envelope, tables, JSON results and /proc readings.

A number is only worth keeping if a reader can tell what produced it and under which conditions:
the envelope records the code (git commit, and whether the tree had uncommitted changes), the
machine (CPU model, cores, memory), how loaded it was (load average at start, end and peak: the
machines these run on are shared, and a number measured under a load of 3 is not comparable with
one measured idle), the versions (Python, PyAV and the FFmpeg it bundles) and when. Results never
record an absolute path (`write_result` rewrites them), so they can be committed as they are.

CPU and memory of other processes are read from /proc (Linux), without psutil, so each benchmark
measures its contenders over the same window by the same parent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
MB = 1024 * 1024

# ------------------------------------------------------------------------------ /proc readings

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """utime + stime of all threads of `pid` so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def child_pids(pid: int) -> list[int]:
    """The children of `pid` (a node's lease keeper process), from every thread's list."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in children.read_text().split()]
        except OSError:
            pass
    return found


def node_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of a node process and of its children (its lease keeper process is part
    of what a node costs)."""
    return cpu_seconds(pid) + total_cpu_seconds(child_pids(pid))


def node_rss_bytes(pid: int, *, peak: bool = False) -> int:
    """Resident set (or its high-water mark) of a node process plus its children's."""
    total = 0
    for each in [pid, *child_pids(pid)]:
        try:
            total += _status_kb(each, "VmHWM" if peak else "VmRSS") * 1024
        except (OSError, ValueError):
            pass
    return total


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the resident-set high-water mark since the process started."""
    return _status_kb(pid, "VmHWM") * 1024


def rss_bytes(pid: int) -> int:
    """VmRSS: the resident set now."""
    return _status_kb(pid, "VmRSS") * 1024


def total_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds summed over processes; one that already exited counts 0 (it shows up as
    missing frames, not as a crash of the benchmark)."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, ValueError):
            pass
    return total


def host_busy() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine so far (/proc/stat): with every process
    of the site on one host, a window in which the host was nearly always busy measured the
    host, not the product."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_since(start: tuple[int, int]) -> float:
    """The machine's busy fraction (of all its cores) since `start` (`host_busy()`)."""
    busy, total = host_busy()
    return round((busy - start[0]) / max(1, total - start[1]), 3)


def total_peak_rss_bytes(pids: Iterable[int]) -> int:
    """Peak RSS summed over processes (exited ones count 0)."""
    total = 0
    for pid in pids:
        try:
            total += peak_rss_bytes(pid)
        except OSError:
            pass
    return total


# ------------------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: with a handful of trials an interpolated p95 would invent a value
    nobody measured."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(q * 100) * len(ordered) // 100))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# ------------------------------------------------------------------------------ load


class LoadSampler:
    """Samples the 1-minute load average every few seconds in a daemon thread, so the result can
    give the peak seen during the run and not only the values at its two ends."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.before = os.getloadavg()
        self.samples: list[float] = [self.before[0]]
        self._after: tuple[float, float, float] | None = None
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
        """Stop sampling (once; later calls return the same facts) and return them."""
        if self._after is None:
            self._stop.set()
            if self._thread.is_alive():
                self._thread.join(self.interval + 1)
            self._after = os.getloadavg()
            self.samples.append(self._after[0])
        return self.facts()

    def facts(self) -> dict[str, Any]:
        after = self._after or os.getloadavg()
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


# ------------------------------------------------------------------------------ the envelope


def first_line(cmd: Sequence[str]) -> str | None:
    """First line a tool prints for e.g. `--version`, or None when it cannot run."""
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def git_state() -> dict[str, Any]:
    """The commit the benchmark ran from, and whether the tree differed from it (a number from
    uncommitted code cannot be reproduced from the commit alone)."""
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    try:
        status = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        dirty: bool | None = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        dirty = None
    return {"commit": commit, "uncommitted_changes": dirty}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("model name", "Hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and OS of this machine."""
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "mem_total_mb": _mem_total_mb(),
        "platform": platform.platform(),
    }


def versions(**tools: str | None) -> dict[str, Any]:
    """Python, hotspare, PyAV and the FFmpeg libraries it bundles, the HTTP stack, plus `tools`
    (name → version line, e.g. the etcd or ffmpeg binary a benchmark ran)."""
    import av
    import httpx

    import hotspare

    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "hotspare": hotspare.__version__,
        "pyav": av.__version__,
        "pyav_ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "pyav_libavformat": ".".join(map(str, av.library_versions.get("libavformat", ()))),
        "httpx": httpx.__version__,
    }
    try:
        import uvicorn

        facts["uvicorn"] = uvicorn.__version__
    except ImportError:
        pass
    facts.update(tools)
    return facts


def envelope(
    started: dt.datetime, load: Mapping[str, Any], tools: Mapping[str, str | None] | None = None
) -> dict[str, Any]:
    """Everything a result needs besides its numbers (see the module docstring)."""
    return {
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": machine(),
        "load": dict(load),
        "versions": versions(**(tools or {})),
    }


# ------------------------------------------------------------------------------ no paths

# An absolute POSIX path of two or more parts, or a Windows drive path; not a URL's path (the
# host before it is a word character) nor a unit such as "Mbit/s".
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:/[\w.@+-]+(?:/[\w.@+-]*)+|[A-Za-z]:\\[^\s\"',;)]*)")


def _roots() -> list[tuple[str, str]]:
    """Machine-specific prefixes and what stands in for them, longest first."""
    pairs = [
        (str(REPO) + os.sep, ""),
        (str(REPO), "."),
        (tempfile.gettempdir(), "$TMPDIR"),
        (str(Path.home()), "~"),
    ]
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def _elide(match: re.Match[str]) -> str:
    name = re.split(r"[/\\]", match.group(0).rstrip("/\\"))[-1]
    return f".../{name}"


def scrub_paths(value: Any) -> Any:
    """`value` with no machine-specific path left: the repository's own paths become
    repository-relative, the temp dir `$TMPDIR`, the home `~`, and any other absolute path
    `.../<its last part>` (e.g. a tool's location in an error message)."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        for prefix, stand_in in _roots():
            value = value.replace(prefix, stand_in)
        return _ABSOLUTE_PATH.sub(_elide, value)
    if isinstance(value, Mapping):
        return {scrub_paths(k): scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_paths(v) for v in value]
    return value


def shown(path: Path) -> str:
    """A path for printing: repository-relative when it is inside the repository."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------ results


def work_dir(benchmark: str) -> Path:
    """A fresh scratch directory in the system temp dir (large files stay off the repository)."""
    return Path(tempfile.mkdtemp(prefix=f"hotspare-bench-{benchmark}-"))


def warn_if_short_of_disk(path: Path, need_bytes: float, how: str) -> bool:
    """Say so before a run whose files may not fit where `path` is (a full disk mid-run spoils
    its trials with errors that are not the product's); True when it was said."""
    free = shutil.disk_usage(path).free
    if free >= need_bytes:
        return False
    print(f"WARNING: {free / 1e9:.1f} GB free where this run writes its files, and it may write "
          f"~{need_bytes / 1e9:.0f} GB ({how}); free space (old `--keep` folders?) or ask for "
          f"fewer trials or cameras", flush=True)
    return True


def remove_work_dir(path: Path, keep: bool) -> None:
    """Delete a run's scratch files, unless `--keep` asked for them (then say where they are)."""
    if keep:
        print(f"files kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def result_path(benchmark: str, quick: bool, out: Path | None = None) -> Path:
    """bench/results/<benchmark>-<UTC date>[-quick].json unless `out` names another file."""
    if out is not None:
        return out
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    return RESULTS_DIR / f"{benchmark}-{today}{'-quick' if quick else ''}.json"


def write_result(
    benchmark: str,
    body: Mapping[str, Any],
    *,
    started: dt.datetime,
    load: Mapping[str, Any],
    quick: bool,
    out: Path | None = None,
    tools: Mapping[str, str | None] | None = None,
) -> Path:
    """Write {"benchmark", "quick", "envelope", **body} as JSON (paths scrubbed); return where."""
    payload = {
        "benchmark": benchmark,
        "quick": quick,
        "envelope": envelope(started, load, tools),
        **body,
    }
    text = json.dumps(scrub_paths(payload), indent=2) + "\n"
    path = result_path(benchmark, quick, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {shown(path)}")
    return path


# ------------------------------------------------------------------------------ tables


def table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A plain-text table, columns as wide as their widest cell. `align` has one letter per
    column, "l" or "r"; missing letters mean the first column left (names), the rest right
    (numbers). None prints as "-"."""
    text_rows = [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    sides = (align or "l").ljust(len(header), "r")

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if side == "l" else c.rjust(w)
            for c, w, side in zip(cells, widths, sides, strict=True)
        ).rstrip()

    head = line(list(header))
    return "\n".join([head, "-" * len(head), *(line(r) for r in text_rows)])
