"""One contender of `bench.lease_keeper`, in a process of its own (its own GIL):
`python -m bench.lease_keeper.child --endpoint URL --ca F --cert F --key F --priority normal
--keeper process`.

It holds a lease through the product's keeper (`Coordinator.hold_lease`; `--keeper thread`: a
thread of this process, `process`: the helper process, the product's default) while `--threads`
synthetic video threads do a camera's per-frame work: wait for the next frame (the GIL released,
as in FFmpeg's read), a stretch of Python (PyAV's packet objects, our clock and cut), and a hash
of the frame's bytes (C with the GIL released, as the muxer's and the commit's work). With
`--priority lowered` (Linux) each video thread first makes itself `--nice` nicer than the rest
of the process — an idea tried against the lease loss, not the product; `normal` is the product
as it is. Meanwhile a thread of normal priority times a keepalive of the same lease every
`--every` seconds. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.lease_process import ProcessLeaseKeeper
from hotspare.etcd_security import EtcdTls


def _helper_usage(pid: int) -> dict[str, float]:
    """The helper process's CPU seconds and resident memory, from /proc (Linux; else none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    rss_kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmRSS:"))
    return {"cpu_s": round((int(stat[11]) + int(stat[12])) / ticks, 3),
            "rss_mb": round(rss_kb / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--priority", choices=("normal", "lowered"), required=True)
    parser.add_argument("--keeper", choices=("thread", "process"), default="process")
    parser.add_argument("--threads", type=int, default=128)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--python-us", type=float, default=700.0)
    parser.add_argument("--frame-kb", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=0.25)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--nice", type=int, default=5)
    args = parser.parse_args()

    coord = Coordinator([args.endpoint], "/hotspare/bench-lease/", timeout=1.0, deadline=5.0,
                        tls=EtcdTls(Path(args.ca), Path(args.cert), Path(args.key)),
                        lease_keeper=args.keeper)
    stop = threading.Event()
    frames = [0] * args.threads
    lowered = [False] * args.threads
    payload = os.urandom(args.frame_kb * 1024)

    def lower() -> bool:
        if not sys.platform.startswith("linux"):  # the nice value is per thread only on Linux
            return False
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid)
                                                 + args.nice))
        return True

    def video(i: int) -> None:
        if args.priority == "lowered":
            lowered[i] = lower()
        period = 1.0 / args.fps
        busy = args.python_us / 1e6
        next_at = time.monotonic() + period * (i / args.threads)
        while not stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += period
            started = time.perf_counter()
            objects: list[dict[str, object]] = []
            while time.perf_counter() - started < busy:
                objects.append({"pts": len(objects), "key": False})
            hashlib.sha256(payload).digest()
            frames[i] += 1

    threads = [threading.Thread(target=video, args=(i,), daemon=True)
               for i in range(args.threads)]
    keeper = coord.hold_lease(args.ttl, role="bench")  # granted before the load begins
    for t in threads:
        t.start()
    time.sleep(0.5)
    latencies: list[float] = []
    failures = 0
    started = time.monotonic()
    frames_before = sum(frames)
    cpu0 = time.process_time()
    lost_after: float | None = None
    while time.monotonic() - started < args.seconds:  # a lost lease's requests are timed too
        time.sleep(args.every)
        if lost_after is None and keeper.lost.is_set():
            lost_after = time.monotonic() - started
        asked = time.monotonic()
        try:
            coord.keepalive_once(keeper.lease, timeout=args.ttl)
        except Exception:
            failures += 1  # timed out or refused: its time is a lower bound, kept with the rest
        latencies.append(time.monotonic() - asked)
    elapsed = time.monotonic() - started
    frames_done = sum(frames) - frames_before
    cpu = time.process_time() - cpu0
    stop.set()
    helper = _helper_usage(keeper.process.pid) if isinstance(keeper, ProcessLeaseKeeper) else {}
    keeper.valid_for()  # the helper's page read: a loss it marked is noticed now
    lost = keeper.lost.is_set()
    beat_gap = keeper.process.beat_gap_max if isinstance(keeper, ProcessLeaseKeeper) else None
    keeper.stop(revoke=not lost)
    coord.close()
    print(json.dumps({
        "priority": args.priority,
        "keeper": type(keeper).__name__,
        "heartbeat_gap_max_s": None if beat_gap is None else round(beat_gap, 3),
        "helper_cpu_s": helper.get("cpu_s"),
        "helper_rss_mb": helper.get("rss_mb"),
        "threads": args.threads,
        "threads_lowered": sum(lowered),
        "seconds": round(elapsed, 2),
        "keepalive_latencies_s": [round(x, 4) for x in latencies],
        "keepalive_failures": failures,
        "lease_lost": lost,
        "lease_lost_reason": keeper.lost_reason,
        "lease_lost_after_s": None if lost_after is None else round(lost_after, 2),
        "lease_doubts": keeper.doubts,
        "frames_done": frames_done,
        "frames_due": round(args.threads * args.fps * elapsed),
        "cpu_cores": round(cpu / elapsed, 3),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
