"""Load-independent counts of what each contender does over the window (`--counts`).

Every count is per camera-minute of video the contender handled (`to_counts`). CPU seconds on a
shared 2-core machine move ±30 % with the load, and this VM exposes no hardware
counters (`perf stat -e instructions` says `<not supported>`), so beside the CPU time (`task-clock`)
each contender gets counts that do not depend on how busy the machine is: system calls in total
and by kind (the RTSP read's `poll` + `recvfrom`, the files' `write`, the commit's `read`,
`fsync`, …), context switches and page faults, all per camera-minute, from one `perf stat -p` per
contender around the same window. The hotspare recorder's CPU is also split by thread (demux +
mux threads, commit threads, the rest) from `/proc/PID/task`, with the thread names the child
writes (`recorder_child.py --threads-file`). With the variants `pyav-demux`, `pyav-remux`,
`no-index` and `default` in one run, `parts_table` turns the steps between them into the cost
of each part (docs/recorder.md, "Where the CPU goes").

Instructions per part come from callgrind on one camera (`bench/recording/instr.py`), not here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import table

SYSCALLS = ("poll", "ppoll", "recvfrom", "read", "write", "pwrite64", "lseek", "fsync",
            "futex", "openat", "close", "newfstatat", "mmap", "munmap", "madvise", "brk")
"""System calls counted one by one (tracepoints `syscalls:sys_enter_<name>`); the rest are in
`syscalls` (all of them, `raw_syscalls:sys_enter`)."""

EVENTS = ("task-clock", "raw_syscalls:sys_enter", "context-switches", "page-faults",
          *(f"syscalls:sys_enter_{s}" for s in SYSCALLS))

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

PART_STEPS = (
    ("PyAV demux (pyav-demux)", None, "pyav-demux"),
    ("+ fMP4 writer (pyav-remux − pyav-demux)", "pyav-demux", "pyav-remux"),
    ("+ our per-packet Python (no-index − pyav-remux)", "pyav-remux", "no-index"),
    ("+ commit (default − no-index)", "no-index", "default"),
)
"""Each part of the recorder's cost as the step between two variants run side by side."""


@dataclass
class Counts:
    """One contender's counts over the window, per camera-minute."""

    cameras: int
    tool: str
    cpu_s: float
    syscalls: int
    context_switches: int
    page_faults: int
    by_syscall: dict[str, int] = field(default_factory=dict)
    stored_share: float = 1.0
    """Share of the window's frames the contender stored; the counts are divided by it."""
    threads_cpu_s: dict[str, float] = field(default_factory=dict)
    """hotspare only: CPU per camera-minute by thread kind (demux+mux, commit, other)."""


class PerfStat:
    """`perf stat -x,` of a set of processes from now until `stop()`."""

    def __init__(self, pids: Sequence[int], out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-o", str(out), "-e", ",".join(EVENTS),
             "-p", ",".join(map(str, pids))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict[str, float]:
        """Event name → count (task-clock in ms); an event perf could not count is left out."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return parse_perf_stat(self.out.read_text() if self.out.exists() else "")


def parse_perf_stat(text: str) -> dict[str, float]:
    """`perf stat -x,` lines: value,unit,event,…; comments and unsupported events skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(",")
        if len(parts) < 3:
            continue
        try:
            out[parts[2]] = float(parts[0])
        except ValueError:
            continue  # "<not supported>", "<not counted>"
    return out


def to_counts(cameras: int, tool: str, raw: dict[str, float], window_s: float,
              stored_share: float | None = None) -> Counts:
    """Per camera-minute of video handled: a contender that stored only `stored_share` of the
    window's frames (it fell behind on an overloaded machine and the camera dropped the rest)
    read and wrote that much less, so its counts are divided by that share (None: not known,
    taken as 1; 0: nothing stored, left undivided — such a row measures nothing)."""
    share = 1.0 if stored_share is None else stored_share
    scale = 1 / cameras / (window_s / 60.0) / (share if share > 0 else 1.0)
    by = {s: round(raw.get(f"syscalls:sys_enter_{s}", 0.0) * scale) for s in SYSCALLS}
    return Counts(
        cameras=cameras, tool=tool,
        cpu_s=round(raw.get("task-clock", 0.0) / 1000 * scale, 4),
        syscalls=round(raw.get("raw_syscalls:sys_enter", 0.0) * scale),
        context_switches=round(raw.get("context-switches", 0.0) * scale),
        page_faults=round(raw.get("page-faults", 0.0) * scale),
        by_syscall={s: n for s, n in by.items() if n}, stored_share=round(share, 3),
    )  # fmt: skip


# ------------------------------------------------------------------------------ threads


def thread_kind(name: str) -> str:
    if name.startswith("hotspare-commit-"):
        return "commit"
    if name.startswith("hotspare-rec-") or "run_floor" in name:
        return "demux+mux"
    return "other"


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of `pid` (tid → s)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def read_thread_names(path: Path, timeout: float = 10.0) -> dict[int, str]:
    """The child's thread map (native id → thread name), once it has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return {int(k): str(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError):
            time.sleep(0.2)
    return {}


def threads_split(before: dict[int, float], after: dict[int, float], names: dict[int, str],
                  cameras: int, window_s: float) -> dict[str, float]:
    """CPU per camera-minute by thread kind over the window."""
    kinds: dict[str, float] = {}
    for tid, cpu in after.items():
        kind = thread_kind(names.get(tid, ""))
        kinds[kind] = kinds.get(kind, 0.0) + cpu - before.get(tid, 0.0)
    scale = 1 / cameras / (window_s / 60.0)
    return {k: round(v * scale, 4) for k, v in sorted(kinds.items())}


# ------------------------------------------------------------------------------ tables


def counts_table(counts: list[Counts]) -> str:
    """One row per camera count and contender; each count against ffmpeg's at the same count."""
    ff = {c.cameras: c for c in counts if c.tool == "ffmpeg"}
    rows = []
    for c in sorted(counts, key=lambda c: (c.cameras, c.tool == "ffmpeg")):
        f = ff.get(c.cameras)
        ratio = f"{c.cpu_s / f.cpu_s:.2f}x" if f and f.cpu_s and c.tool != "ffmpeg" else ""
        sys_ratio = (f"{c.syscalls / f.syscalls:.2f}x"
                     if f and f.syscalls and c.tool != "ffmpeg" else "")
        top = ", ".join(f"{k} {v / 1000:.1f}k" for k, v in
                        sorted(c.by_syscall.items(), key=lambda kv: -kv[1])[:5])
        threads = " ".join(f"{k} {v:.3f}" for k, v in c.threads_cpu_s.items())
        rows.append([c.cameras, c.tool, f"{c.stored_share:.2f}", f"{c.cpu_s:.3f}", ratio,
                     f"{c.syscalls / 1000:.1f}k", sys_ratio, f"{c.context_switches / 1000:.1f}k",
                     f"{c.page_faults / 1000:.1f}k", top, threads])
    return table(["cams", "tool", "stored", "CPU s", "CPU/ff", "syscalls", "sys/ff", "ctxsw",
                  "faults", "top syscalls", "CPU s by thread"], rows,
                 align="rlrrrrrrrll")  # fmt: skip


def parts(counts: list[Counts]) -> list[dict[str, Any]]:
    """The recorder's cost split into steps between variants of the same run (per camera count),
    each with its CPU and system calls per camera-minute and its share of ffmpeg's CPU."""
    out: list[dict[str, Any]] = []
    for n in sorted({c.cameras for c in counts}):
        by = {c.tool: c for c in counts if c.cameras == n}
        ff = by.get("ffmpeg")
        names = {"default": "hotspare"}
        if ff is None or not all(names.get(v, f"hs:{v}") in by for _, _, v in PART_STEPS):
            continue
        for label, before, after in PART_STEPS:
            a = by[names.get(after, f"hs:{after}")]
            b = by[names.get(before, f"hs:{before}")] if before else None
            cpu = a.cpu_s - (b.cpu_s if b else 0.0)
            sysc = a.syscalls - (b.syscalls if b else 0.0)
            out.append({"cameras": n, "part": label, "cpu_s": round(cpu, 4),
                        "x_ffmpeg_cpu": round(cpu / ff.cpu_s, 3) if ff.cpu_s else None,
                        "syscalls": round(sysc)})
        rec = by["hotspare"]
        out.append({"cameras": n, "part": "= the recorder (default)", "cpu_s": rec.cpu_s,
                    "x_ffmpeg_cpu": round(rec.cpu_s / ff.cpu_s, 3) if ff.cpu_s else None,
                    "syscalls": rec.syscalls})
        out.append({"cameras": n, "part": "ffmpeg -c copy -f segment", "cpu_s": ff.cpu_s,
                    "x_ffmpeg_cpu": 1.0, "syscalls": ff.syscalls})
    return out


def parts_table(rows: list[dict[str, Any]]) -> str:
    return table(["cams", "part", "CPU s/cam-min", "x ffmpeg", "syscalls/cam-min"],
                 [[r["cameras"], r["part"], f"{r['cpu_s']:+.3f}",
                   f"{r['x_ffmpeg_cpu']:+.2f}" if r["x_ffmpeg_cpu"] is not None else "",
                   f"{r['syscalls']:+d}"] for r in rows], align="rlrrr")  # fmt: skip
