"""Where the CPU of each contender goes, from a `perf record -g` of a recording benchmark window.

    .venv/bin/python -m bench.recording --cameras 8 --seconds 20 --variants frag200 --perf p.data
    .venv/bin/python -m bench.recording.perf_split p.data

Each sample is put in one bucket by the first frame of its call stack (leaf first) that names a
system call or a library we can tell apart: the network read (`poll`, `recv`), file writes, the
commit's parts (SHA-256 in libcrypto, `fsync`, file reads, SQLite), FFmpeg's libraries, the Python
interpreter. Samples are counted per command name (`python` = the hotspare recorder process,
`ffmpeg` = the ffmpeg children together); the same bucket in both columns is work both do.
Without frame pointers the stacks of PyAV's FFmpeg are often cut short, so "libav*" and
"python" are leaf-based and the syscall buckets are lower bounds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

# (substring of a stack frame, bucket), tried frame by frame from the leaf up.
STACK_BUCKETS = (
    ("__poll", "poll (network wait)"),
    ("__libc_recv", "recv (network read)"),
    ("__libc_write", "write (file)"),
    ("libcrypto", "SHA-256 (commit)"),
    ("fsync", "fsync (commit)"),
    ("ksys_read", "read (commit)"),
    ("sqlite", "SQLite (commit)"),
    ("futex", "futex (locks, GIL)"),
    ("clock_gettime", "clock"),
)


def leaf_bucket(leaf: str) -> str:
    if "kernel" in leaf:
        return "kernel, other"
    if "libpython" in leaf or ".abi3.so" in leaf or "cpython-" in leaf:
        return "Python interpreter + PyAV"
    for lib in ("libavformat", "libavcodec", "libavutil"):
        if lib in leaf:
            return "libav* (FFmpeg)"
    if "libc.so" in leaf:
        return "libc, other (memcpy, malloc)"
    return "other"


def split(script_text: str) -> dict[str, Counter[str]]:
    """command name -> bucket -> samples, from `perf script` output."""
    by_comm: dict[str, Counter[str]] = defaultdict(Counter)
    for sample in script_text.split("\n\n"):
        lines = [x for x in sample.strip().split("\n") if x.strip()]
        if len(lines) < 2:
            continue
        comm = lines[0].split()[0]
        frames = lines[1:]
        bucket = next((name for frame in frames for key, name in STACK_BUCKETS if key in frame),
                      None)
        by_comm[comm][bucket or leaf_bucket(frames[0])] += 1
    return by_comm


def report(by_comm: dict[str, Counter[str]]) -> str:
    comms = sorted(by_comm, key=lambda c: -sum(by_comm[c].values()))
    buckets = sorted({b for c in comms for b in by_comm[c]},
                     key=lambda b: -sum(by_comm[c][b] for c in comms))
    rows = [f"{'bucket':32s}" + "".join(f"{c:>12s}" for c in comms)]
    for b in buckets:
        rows.append(f"{b:32s}" + "".join(f"{by_comm[c][b]:12d}" for c in comms))
    rows.append(f"{'total samples':32s}" + "".join(f"{sum(by_comm[c].values()):12d}"
                                                   for c in comms))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("perf_data", type=Path, help="the file `--perf` of bench.recording wrote")
    args = p.parse_args(argv)
    text = subprocess.run(["perf", "script", "-i", str(args.perf_data)], capture_output=True,
                          text=True, check=True).stdout
    print(report(split(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
