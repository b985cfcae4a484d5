"""Benchmark: the cost of reading a long range of one camera, the attack of issue 11 item 8.

    .venv/bin/python -m bench.reads                       # 30 days of 4 s segments (648 000 rows)
    .venv/bin/python -m bench.reads --quick               # 3 days (64 800 rows)
    .venv/bin/python -m bench.reads --baseline-src DIR    # also measure another tree's `src`

A synthetic store is written straight into the index (one run per day, back to back 4 s segments,
no files: listing, timelines and playlists read only rows). Each request runs in a fresh process
(`bench/reads/child.py`) over the node app in process (Starlette's TestClient), so its time and
peak RSS are its own: the 30-day segment list, timeline and playlist a viewer may ask, and the
largest request each route accepts now (a day of segments or playlist, a week of timeline).
The baseline is the same requests against `--baseline-src` (e.g. a copy of the tree before the
read limits), on the same store in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import MB, REPO, LoadSampler, remove_work_dir, table, work_dir, write_result
from hotspare.store.db import init_schema
from hotspare.store.synth import insert_rows_only

DAY_US = 86_400_000_000
SEGMENT_US = 4_000_000
T0 = 1_764_104_400_000_000  # 2025-11-25T21:00:00Z
CAMERA = "cam-1"
SERVER = "rec-a"


def fill_store(root: Path, days: int) -> int:
    """`days` runs of back-to-back 4 s segments of one camera, rows only; returns the row count."""
    root.mkdir(parents=True)
    (root / "segments").mkdir()
    db = sqlite3.connect(root / "index.sqlite3", isolation_level=None)
    db.execute("pragma journal_mode = wal")
    init_schema(db, SERVER)
    db.execute("begin")
    rows = insert_rows_only(db, CAMERA, SERVER, T0, days, DAY_US // SEGMENT_US,
                            segment_us=SEGMENT_US, bytes_each=2_000_000, tag="bench")
    db.execute("commit")
    db.close()
    return rows


def measure(src: Path, store: Path, path: str, now_us: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("child.py")), "--src", str(src),
         "--store", str(store), "--path", path, "--now-us", str(now_us)],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"status": None, "error": out.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 days instead of 30")
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another tree's src folder to measure on the same store")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    days = args.days or (3 if args.quick else 30)

    started = dt.datetime.now(dt.UTC)
    sampler = LoadSampler().__enter__()
    work = work_dir("reads")
    rows = fill_store(work / "store", days)
    end = T0 + days * DAY_US
    base = f"/api/v1/cameras/{CAMERA}"
    asks = [
        (f"segments {days} d", f"{base}/segments?from={T0}&to={end}"),
        (f"timeline {days} d", f"{base}/timeline?from={T0}&to={end}"),
        (f"playback {days} d", f"{base}/playback.m3u8?from={T0}&to={end}"),
        ("segments 1 d", f"{base}/segments?from={T0}&to={T0 + DAY_US}"),
        ("timeline 7 d", f"{base}/timeline?from={T0}&to={T0 + min(days, 7) * DAY_US}"),
        ("playback 1 d", f"{base}/playback.m3u8?from={T0}&to={T0 + DAY_US}"),
    ]
    trees = [("this tree", REPO / "src")]
    if args.baseline_src is not None:
        trees.insert(0, ("baseline", args.baseline_src))
    print(f"hotspare reads bench: {rows} rows of one camera over {days} d; {sampler.line()}",
          flush=True)
    results: list[dict[str, Any]] = []
    for name, path in asks:
        for tree, src in trees:
            r = measure(src, work / "store", path, end)
            results.append({"request": name, "tree": tree, **r})
            print(f"  {name:<16} {tree:<10} {r}", flush=True)
    print(table(
        ["request", "tree", "status", "seconds", "answer MB", "peak RSS MB", "growth MB"],
        [[r["request"], r["tree"], f"{r['status']} {r.get('error') or ''}".strip(),
          r.get("seconds"), round(r.get("answer_bytes", 0) / MB, 2),
          round(r.get("peak_rss_bytes", 0) / MB), round(r.get("peak_growth_bytes", 0) / MB)]
         for r in results], align="llrrrrr"))
    load = sampler.stop()
    write_result("reads", {"rows": rows, "days": days, "segment_seconds": SEGMENT_US / 1e6,
                           "results": results},
                 started=started, load=load, quick=args.quick, out=args.out)
    remove_work_dir(work, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
