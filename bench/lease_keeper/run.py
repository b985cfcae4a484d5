"""Benchmark: a node's lease keepalive when its threads' Python work exceeds a core.

    .venv/bin/python -m bench.lease_keeper                  # 3 trials of each, 30 s, 128 threads
    .venv/bin/python -m bench.lease_keeper --quick          # 1 trial of each, 8 s
    .venv/bin/python -m bench.lease_keeper --python-us 300  # demand under a core: no loss

Why: a spare recording 64 cameras lost its own lease at the handback on a saturated 2-core host
(bench/README.md, *The spare's lease lost at the handback*): its keepalives did not get out in
time. This reproduces it without cameras — a lease keeper in a process whose video threads want
more than one core of Python (the GIL's capacity) — and compares the product's keeper, a helper
process the node beats a heartbeat to (`lease_keeper = "process"`), against the baseline it
replaced, a keeper thread in the node's process (`lease_keeper = "thread"`). `--with-nice` adds
an idea measured and rejected: the keeper thread with the video threads made nicer than the
rest of the process, so that the scheduler would run the keeper first (it made things worse).

What runs: a single-member etcd with TLS (the product's launcher); `--hogs` busy processes (by
default one per core) that stand for the rest of a saturated host (the recording server and
the cameras beside the spare in `bench.scale`); then, one after the other and alternating, a
child process per trial (`bench/lease_keeper/child.py`) holding a lease (TTL `--ttl`) through
the product's keeper while `--threads` synthetic video threads do a camera's per-frame work.
Reported per contender: leases lost (and when) and put in doubt; keepalive round-trip of a
request every 0.25 s sent from a thread of the loaded process, for the whole trial
(p50/p95/p99/max; one that timed out counts with its time) — what a keeper thread there goes
through; for the helper process, the longest gap between two of the node's heartbeats (the
helper revokes after a whole TTL); the video threads' frames done against due; the child's CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import LoadSampler, percentile, remove_work_dir, table, work_dir, write_result
from hotspare.coordination.etcd_process import EtcdCluster
from hotspare.pki.store import SitePki

CONTENDERS = {"thread": ("thread", "normal"), "process": ("process", "normal"),
              "nice": ("thread", "lowered")}
"""Each contender's (keeper, video threads' priority) for `child.py`."""
NAMES = {"thread": "baseline: keeper thread (lease_keeper = thread)",
         "process": "hotspare: keeper process (the default)",
         "nice": "rejected: keeper thread, video threads nice +N"}


def _hog() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_trial(etcd: EtcdCluster, contender: str, args: argparse.Namespace) -> dict[str, Any]:
    keeper, priority = CONTENDERS[contender]
    tls = etcd.client_tls
    assert tls is not None
    cmd = [sys.executable, "-m", "bench.lease_keeper.child", "--endpoint", etcd.endpoints[0],
           "--ca", str(tls.ca_file), "--cert", str(tls.cert_file), "--key", str(tls.key_file),
           "--priority", priority, "--keeper", keeper, "--threads", str(args.threads),
           "--fps", str(args.fps), "--python-us", str(args.python_us),
           "--seconds", str(args.seconds), "--ttl", str(args.ttl), "--nice", str(args.nice)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 120,
                         cwd=Path(__file__).resolve().parents[2])
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"trial ({contender}) failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["child_warnings"] = sum(1 for line in out.stderr.splitlines() if "WARNING" in line)
    return result


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize(trials: list[dict[str, Any]]) -> dict[str, Any]:
    lat = sorted(x for t in trials for x in t["keepalive_latencies_s"])

    def ms(q: float) -> float | None:
        v = percentile(lat, q / 100)
        return None if v is None else round(v * 1000, 1)

    gaps = [t["heartbeat_gap_max_s"] for t in trials if t.get("heartbeat_gap_max_s") is not None]
    done = sum(t["frames_done"] for t in trials)
    due = sum(t["frames_due"] for t in trials)
    return {
        "trials": len(trials),
        "keepalives": len(lat),
        "keepalive_p50_ms": ms(50),
        "keepalive_p95_ms": ms(95),
        "keepalive_p99_ms": ms(99),
        "keepalive_max_ms": round(lat[-1] * 1000, 1) if lat else None,
        "keepalive_failures": sum(t["keepalive_failures"] for t in trials),
        "leases_lost": sum(1 for t in trials if t["lease_lost"]),
        "lease_doubts": sum(t["lease_doubts"] for t in trials),
        "heartbeat_gap_max_ms": round(max(gaps) * 1000, 1) if gaps else None,
        "helper_cpu_cores_mean": _mean([t["helper_cpu_s"] / t["seconds"] for t in trials
                                        if t.get("helper_cpu_s") is not None]),
        "helper_rss_mb_max": max((t["helper_rss_mb"] for t in trials
                                  if t.get("helper_rss_mb") is not None), default=None),
        "frames_done_of_due": round(done / due, 4) if due else None,
        "cpu_cores_mean": round(sum(t["cpu_cores"] for t in trials) / len(trials), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lease_keeper", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3, help="trials of each contender")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of a trial")
    parser.add_argument("--threads", type=int, default=128,
                        help="video threads (64 recording + 64 standby at a 64-camera handback)")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--python-us", type=float, default=700.0,
                        help="Python work per frame and thread, µs (700: 1.3 cores of GIL "
                        "demand at 128 threads and 15 fps)")
    parser.add_argument("--ttl", type=float, default=2.0, help="lease TTL (bench.scale's: 2 s)")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2,
                        help="busy processes standing for the rest of a saturated host")
    parser.add_argument("--with-nice", action="store_true",
                        help="also run the rejected idea (video threads niced, keeper thread)")
    parser.add_argument("--nice", type=int, default=5,
                        help="Linux: how much nicer that idea's video threads run")
    parser.add_argument("--quick", action="store_true", help="1 trial of each, 8 s")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/...)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch files")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.seconds = 1, 8.0

    started = dt.datetime.now(dt.UTC)
    sampler = LoadSampler().__enter__()
    print(f"lease keepalive under {args.threads} video threads and {args.hogs} busy processes, "
          f"{args.trials} trial(s) of {args.seconds:g} s each contender; {sampler.line()}",
          flush=True)
    work = work_dir("lease-keeper")
    etcd = EtcdCluster(work / "etcd", 1, pki=SitePki.init(work / "pki", "bench CA"))
    hogs: list[subprocess.Popen[bytes]] = []
    contenders = ["thread", "process"] + (["nice"] if args.with_nice else [])
    trials: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
    try:
        etcd.start()
        hogs = [_hog() for _ in range(args.hogs)]
        time.sleep(1.0)
        for i in range(args.trials):
            for contender in (contenders if i % 2 == 0 else contenders[::-1]):
                trial = run_trial(etcd, contender, args)
                s = summarize([trial])
                held = (f"LOST after {trial['lease_lost_after_s']} s" if trial["lease_lost"]
                        else "held")
                gap = ("" if trial["heartbeat_gap_max_s"] is None else
                       f"; heartbeat gap max {trial['heartbeat_gap_max_s']} s")
                print(f"  trial {i + 1} {contender}: keepalive p50 {s['keepalive_p50_ms']} ms, "
                      f"p95 {s['keepalive_p95_ms']} ms, max {s['keepalive_max_ms']} ms; lease "
                      f"{held} ({trial['lease_doubts']} doubts); frames "
                      f"{trial['frames_done']}/{trial['frames_due']}; "
                      f"{trial['threads_lowered']}/{trial['threads']} threads lowered{gap}",
                      flush=True)
                trials[contender].append(trial)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        etcd.stop()
        load = sampler.stop()
        remove_work_dir(work, args.keep)
    summary = {c: summarize(trials[c]) for c in contenders}
    print()
    print(table(["contender", "leases lost", "doubts", "keepalive p50 ms", "p95", "p99", "max",
                 "heartbeat gap max ms", "frames done/due", "cores"],
                [[NAMES[c].replace("+N", f"+{args.nice}"), f"{s['leases_lost']}/{s['trials']}",
                  s["lease_doubts"], s["keepalive_p50_ms"], s["keepalive_p95_ms"],
                  s["keepalive_p99_ms"], s["keepalive_max_ms"], s["heartbeat_gap_max_ms"],
                  s["frames_done_of_due"], s["cpu_cores_mean"]]
                 for c, s in summary.items()]))
    print(f"\n{sampler.line()}")
    write_result(
        "lease-keeper",
        {
            "setup": {
                "threads": args.threads, "fps": args.fps, "python_us_per_frame": args.python_us,
                "ttl_s": args.ttl, "hogs": args.hogs, "seconds": args.seconds,
                "trials_each": args.trials, "nice_increment": args.nice,
                "contenders": {c: NAMES[c] for c in contenders},
                "etcd": "1 member, TLS, loopback",
            },
            "summary": summary,
            "trials": trials,
        },
        started=started, load=load, quick=args.quick, out=args.out,
    )
    return 0
