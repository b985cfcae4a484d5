"""Micro-measurement: what one detection probe and one detection round cost the spare's CPU.

    .venv/bin/python -m bench.site_scale.probe_cost --servers 200 --cameras 50

The servers are `stubs.NodeHttp` responders (the real `HealthOut` of `--cameras` cameras) in a
child process, so the CPU counted here is the spare's alone: per probe, the thread CPU time of
`HealthProber.probe` on one thread; per round, the process CPU time of `Detector.run` over every
server (all answering "recording", nothing to claim), with its probe threads. A number for a
report, not a test: it depends on the machine and its load (printed with the result).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import sys
import time
from types import SimpleNamespace
from typing import Any

from bench.site_scale.stubs import HttpLoop, NodeHttp, SyntheticCommits
from hotspare.failover.detection import ServerTrack
from hotspare.failover.probe import HealthProber, ProbeKind
from hotspare.failover.spare_detect import Detector


def _serve(socks: list[socket.socket], cameras: int, ready: Any) -> None:
    loop = HttpLoop()
    for n, sock in enumerate(socks):
        name = f"rec-{n + 1}"
        commits = SyntheticCommits(name, [f"{name}-cam-{c}" for c in range(cameras)], 4.0)
        NodeHttp(loop, name, sock.getsockname()[1], commits, sock).start()
    ready.set()
    time.sleep(3600)


def _round(detector: Detector, servers: list[Any]) -> None:
    claims: dict[str, object] = {}
    state = SimpleNamespace(claims=claims, alive={s.name: True for s in servers})

    def claim(*_: object) -> bool:
        raise AssertionError("every server records; nothing to claim")

    plan = SimpleNamespace(designated=lambda _s: None, for_spare=lambda _s: [])
    detector.run(state, {}, plan, lambda: None, claim)  # type: ignore[arg-type,return-value]


def measure(servers: int, cameras: int, probes: int, rounds: int) -> dict[str, Any]:
    socks = [socket.create_server(("127.0.0.1", 0), backlog=256) for _ in range(servers)]
    ready = multiprocessing.Event()
    child = multiprocessing.Process(target=_serve, args=(socks, cameras, ready), daemon=True)
    child.start()
    try:
        ready.wait(30)
        addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]
        for sock in socks:
            sock.close()
        prober = HealthProber("bench-token", 0.5)
        for address in addresses:  # connect and warm up
            assert prober.probe(address).kind is ProbeKind.RECORDING
        started = time.thread_time()
        for n in range(probes):
            prober.probe(addresses[n % len(addresses)])
        per_probe = (time.thread_time() - started) / probes

        config = [SimpleNamespace(name=f"rec-{n + 1}", address=a)
                  for n, a in enumerate(addresses)]
        applied = SimpleNamespace(
            config=SimpleNamespace(failover_server=lambda _n: object(),
                                   recording_servers=config),
            allotment=lambda: None, mod_revision=1)
        ctx = SimpleNamespace(
            name="spare-1", applied_now=lambda: applied,
            settings=SimpleNamespace(probe_timeout_seconds=0.5, startup_grace_seconds=10.0))
        detector = Detector(ctx, prober)  # type: ignore[arg-type]
        _round(detector, config)
        walls, cpus = [], []
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            _round(detector, config)
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
        assert all(isinstance(t, ServerTrack) for t in detector.tracks.values())
        detector.close()
        prober.close()
    finally:
        child.terminate()
        child.join(5)
    walls.sort()
    cpus.sort()
    return {"servers": servers, "cameras_per_server": cameras,
            "probe_cpu_ms": round(per_probe * 1000, 3),
            "round_cpu_ms_median": round(cpus[len(cpus) // 2] * 1000, 1),
            "round_wall_ms_median": round(walls[len(walls) // 2] * 1000, 1),
            "load_1min": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.servers, args.cameras, args.probes, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
