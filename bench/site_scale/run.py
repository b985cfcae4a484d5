"""Benchmark: a site of many recording servers and cameras on one 3-member etcd.

    .venv/bin/python -m bench.site_scale                          # 200 servers, 10 000 cameras
    .venv/bin/python -m bench.site_scale --quick                  # 10 servers, 500 cameras, 1 kill
    .venv/bin/python -m bench.site_scale --curve 10,50,100,200    # the cost curve, one site each

How it is simulated (bench/README.md says more): a real 3-member etcd cluster on loopback; the
site laid out and applied by the product (`hotspare.demo.site_files`, `hotspare site apply`);
every node runs the product's own loops — its `Coordinator`, `SiteView`, `EventLog`,
`ProtectionMonitor` and its `ServerAgent` or `SpareAgent` — on threads, many nodes per process
(`bench/site_scale/nodes.py`); only video is replaced (`stubs.py`: a clock-driven commit schedule
instead of a recorder, a minimal HTTP responder instead of the node's FastAPI app). The master's
site API is the real router, served by uvicorn in this process (`master.py`).

With the whole site running it measures, over one window: etcd requests/s, bytes/s, CPU and memory
(per member, from /metrics and /proc), watchers (fan-out), the snapshot read every node makes, the
protection report, and the master's site API latency (status, cameras, protection, merged
timeline). Then, per trial, one recording server dies (its port refuses, keepalives and watches
stop, nothing is revoked) and crash → claim is the claim's own `at_us` minus the kill time; the
server is revived and the handback awaited. Last, a site config change is applied and the time
until every node (spares first) sees the new revision is taken.

The baseline is the same measurement at the smallest size in the same run (`--curve`), or the
goals for a single size: crash → claim p95 ≤ 1 s and master status ≤ 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import queue
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import httpx
import tomli_w

from bench.common import (
    REPO,
    RESULTS_DIR,
    LoadSampler,
    busy_since,
    cpu_seconds,
    first_line,
    host_busy,
    median,
    percentile,
    remove_work_dir,
    table,
    total_cpu_seconds,
    work_dir,
    write_result,
)
from bench.plot import plot_panels
from bench.site_scale import etcd_stats
from bench.site_scale.convergence import convergence, describe
from bench.site_scale.master import Master, snapshot_facts, summary_ms, timed
from hotspare.cli.main import main as cli_main
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.etcd_process import EtcdCluster, find_etcd_binary
from hotspare.demo.site_files import ServerPlan, SitePlan, SparePlan, write_site
from hotspare.node.runtime import bind_socket
from hotspare.signing_keys import TRUST_ROOTS_FILE
from hotspare.sitestate import layout
from hotspare.sitestate.protection import live_report
from hotspare.sitestate.values import Claim
from tests.support.etcd import start_etcd_cluster

SITE_ID = "scale"
TOKEN = "bench-site-scale-token-0123456789"
SERVERS_PER_PROCESS = 50
GOAL_CLAIM_P95_S = 1.0
GOAL_STATUS_S = 1.0
CONFIG_WAIT_S = 60.0
"""How long the bench waits for every node to hold a changed configuration before it names the
ones behind."""


@dataclass(frozen=True)
class Size:
    servers: int
    cameras: int
    spares: int

    def camera_counts(self) -> list[int]:
        base, extra = divmod(self.cameras, self.servers)
        return [base + (1 if i < extra else 0) for i in range(self.servers)]


def server_name(index: int) -> str:
    return f"rec-{index + 1:03d}"


# ------------------------------------------------------------------------------ the site


def site_plan(size: Size, endpoints: list[str], ports: dict[str, socket.socket]) -> SitePlan:
    """Camera URLs point at a closed port: nobody connects to them (video is simulated).
    `ports`: each server's listening socket, bound already."""
    servers = [ServerPlan(server_name(i), {f"{server_name(i)}-c{n}": f"rtsp://127.0.0.1:9/{n}"
                                           for n in range(1, count + 1)},
                          role="master" if i == 0 else "recording",
                          port=ports[server_name(i)].getsockname()[1])
               for i, count in enumerate(size.camera_counts())]
    return SitePlan(
        site_id=SITE_ID, etcd_endpoints=endpoints, token=TOKEN, servers=servers,
        spares=[SparePlan(f"spare-{i + 1:02d}") for i in range(size.spares)],
        spare_licences=size.spares, camera_licences=size.cameras + 100,
        recording={"segment_seconds": 4.0},
        membership={},  # the product's defaults: lease 3 s, probe every 0.25 s, timeout 0.5 s
    )


class Workers:
    """The node processes: spawn, read their facts, send them commands."""

    def __init__(self, root: Path, plan: SitePlan, etcd: EtcdCluster,
                 socks: dict[str, socket.socket], monitors: str, trust: Path, nice: int,
                 profile: Path | None) -> None:
        membership = etcd_membership(etcd)
        groups: list[dict[str, Any]] = []
        servers = [{"name": s.name, "port": s.port, "fd": socks[s.name].fileno()}
                   for s in plan.servers]
        for start in range(0, len(servers), SERVERS_PER_PROCESS):
            groups.append({"servers": servers[start:start + SERVERS_PER_PROCESS], "spares": []})
        # Each spare in a process of its own, as on its own machine: its detection must not
        # queue behind the servers' threads, nor another spare's, for the GIL.
        first_spare = len(groups)
        for spare in plan.spares:
            groups.append({"servers": [], "spares": [{"name": spare.name, "port": spare.port}]})
        self.facts: queue.Queue[dict[str, Any]] = queue.Queue()
        self.quit_wait = 10.0 if profile is None else 120.0  # a profile takes long to write
        self.config_seen: dict[str, tuple[int, int]] = {}
        self.owner: dict[str, int] = {}
        self.procs: list[subprocess.Popen[str]] = []
        for index, group in enumerate(groups):
            worker = f"nodes-{index}"
            spec = {"worker": worker, "data_dir": str(root), "token": TOKEN,
                    "membership": membership, "monitors": monitors,
                    "master": plan.servers[0].name, "licence_keys": str(trust),
                    "nice": nice if group["servers"] else 0,
                    "profile": None if profile is None else str(profile / f"{worker}.txt"),
                    **group}
            path = root / f"{worker}.json"
            path.write_text(json.dumps(spec))
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.site_scale.nodes", str(path)], cwd=REPO,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                pass_fds=[item["fd"] for item in group["servers"]])
            self.procs.append(proc)
            for item in group["servers"]:
                self.owner[item["name"]] = index
            assert proc.stdout is not None
            threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()
        self.spare_workers = list(range(first_spare, len(groups)))
        self.spares = [s.name for s in plan.spares]
        self.nodes: list[str] = [*(str(s["name"]) for s in servers), *self.spares]

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                fact = json.loads(line)
            except ValueError:
                continue
            if "config" in fact:
                self.config_seen[fact["config"]] = (fact["rev"], fact["at_us"])
            else:
                self.facts.put(fact)

    def wait(self, key: str, value: Any = None, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {key!r} from the node processes in {timeout:.0f} s")
            try:
                fact = self.facts.get(timeout=min(left, 1.0))
            except queue.Empty:
                dead = [i for i, p in enumerate(self.procs) if p.poll() is not None]
                if dead:
                    raise RuntimeError(f"node process(es) nodes-{dead} exited; see their .log and "
                                       "stderr above") from None
                continue
            if key in fact and (value is None or fact[key] == value):
                return fact

    def wait_ready(self, timeout: float) -> list[str]:
        """The nodes that failed to start (logged in their process's .log)."""
        failed: list[str] = []
        for _ in self.procs:
            failed += self.wait("ready", timeout=timeout).get("failed", [])
        return failed

    def send(self, server: str | None, command: dict[str, Any]) -> None:
        """To the process hosting `server` (None: every spare's process)."""
        for index in self.spare_workers if server is None else [self.owner[server]]:
            proc = self.procs[index]
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(command) + "\n")
            proc.stdin.flush()

    def rounds(self) -> tuple[list[float], list[int]]:
        """Every spare's detection rounds since the last reset: (seconds, servers probed)."""
        self.send(None, {"rounds": "report"})
        seconds: list[float] = []
        probed: list[int] = []
        for _ in self.spare_workers:
            fact = self.wait("rounds")
            seconds += [r for spare in fact["rounds"].values() for r in spare]
            probed += [n for spare in fact["probed"].values() for n in spare]
        return seconds, probed

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @property
    def server_pids(self) -> list[int]:
        return [p.pid for i, p in enumerate(self.procs) if i not in self.spare_workers]

    @property
    def spare_pids(self) -> list[int]:
        return [self.procs[i].pid for i in self.spare_workers]

    def stop(self) -> None:
        for proc in self.procs:
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"quit": True}) + "\n")
                proc.stdin.flush()
            except (OSError, ValueError):
                pass
        for proc in self.procs:
            try:
                proc.wait(self.quit_wait)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def etcd_membership(etcd: EtcdCluster) -> dict[str, Any]:
    """The `[site]` table of every node: TLS with the cluster's client certificate (one for all
    nodes, where a real site issues one per node), or plain HTTP when the cluster runs without."""
    scheme = "http" if etcd.client_tls is None else "https"
    # Leases kept by a thread of each simulated node: a real node's helper process
    # (`lease_keeper = "process"`, the default) would be 200 more processes on this one host.
    membership: dict[str, Any] = {"id": SITE_ID, "lease_keeper": "thread",
                                  "etcd_endpoints": [f"{scheme}://{e}" for e in etcd.endpoints]}
    if etcd.client_tls is None:
        membership["etcd_insecure_plaintext"] = True
    else:
        tls = etcd.client_tls
        membership |= {"etcd_ca_file": str(tls.ca_file), "etcd_cert_file": str(tls.cert_file),
                       "etcd_key_file": str(tls.key_file)}
    return membership


def coordinator(etcd: EtcdCluster) -> Coordinator:
    return Coordinator(etcd.endpoints, layout.site_prefix(SITE_ID), timeout=2.0, deadline=10.0,
                       tls=etcd.client_tls, insecure_plaintext=etcd.insecure_plaintext)


def wait_until(what: str, check: Callable[[], Any], timeout: float,
               interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except CoordinationError as exc:  # the bench's own read, on an etcd the site saturates
            print(f"  (waiting for {what}: {exc}; asking again)", flush=True)
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def confirmed_count(coord: Coordinator) -> int:
    return sum(1 for kv in coord.get_prefix(layout.ALIVE_PREFIX).kvs
               if json.loads(kv.value).get("confirmed"))


# ------------------------------------------------------------------------------ one site


def run_site(size: Size, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    print(f"\n== site: {size.servers} servers, {size.cameras} cameras, {size.spares} spares")
    etcd = start_etcd_cluster(root / "etcd", 3, tls=not args.etcd_plaintext)
    workers: Workers | None = None
    master: Master | None = None
    coord = coordinator(etcd)
    try:
        socks = {server_name(i): bind_socket("127.0.0.1", 0) for i in range(size.servers)}
        plan = site_plan(size, etcd.endpoints, socks)
        files = write_site(root / "site", plan)
        files.document["etcd"]["endpoints"] = etcd_membership(etcd)["etcd_endpoints"]
        files.site_toml.write_bytes(tomli_w.dumps(files.document).encode())
        # This installation trusts the key that signed the site's licence (beside site.toml,
        # where `site apply` looks; the node processes install it too).
        trust = files.site_toml.parent / TRUST_ROOTS_FILE
        shutil.copyfile(files.site_toml.parent / "keys" / "licence-signing.pub", trust)
        started = time.monotonic()
        apply = ["site", "apply", *etcd.cli_args(), str(files.site_toml)]
        assert cli_main(apply) == 0, "site apply failed"
        apply_s = time.monotonic() - started
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        workers = Workers(root, plan, etcd, socks, args.monitors, trust, args.nice,
                          args.profile)
        for sock in socks.values():
            sock.close()  # the node processes hold them now
        # Each worker starts its nodes one after another (TLS handshakes, leases, watches, a
        # first site read each): 333 s for 200 servers under load last time, so ~1.5 s a node.
        failed = workers.wait_ready(timeout=60 + 2 * size.servers)
        if failed:
            print(f"WARNING: {len(failed)} node(s) did not start: {', '.join(failed[:10])}")
        try:
            wait_until("every server alive and confirmed",
                       lambda: confirmed_count(coord) >= size.servers, 60 + size.servers / 2, 0.5)
        except TimeoutError:
            print(f"WARNING: only {confirmed_count(coord)} of {size.servers} servers confirmed; "
                  "measuring anyway (the host cannot keep every simulated lease)")
        confirmed = confirmed_count(coord)
        startup_s = time.monotonic() - started
        print(f"site up in {startup_s:.1f} s (site apply {apply_s:.2f} s)")
        master = Master(coordinator(etcd), TOKEN, root / "master")
        time.sleep(args.settle)
        steady = measure_steady(size, etcd, coord, master, workers, args.seconds)
        trials = crash_trials(size, coord, workers, args.trials, args.baseline_trials)
        config = config_change(apply, files.document, coord, workers)
        return {"size": vars(size) | {"node_processes": len(workers.procs)},
                "monitors": args.monitors, "etcd_tls": etcd.client_tls is not None,
                "servers_nice": args.nice if hasattr(os, "nice") else None,
                "node_logs": log_counts(root),
                "startup_s": round(startup_s, 2), "site_apply_s": round(apply_s, 2),
                "confirmed_at_start": confirmed, "nodes_not_started": failed,
                **steady, "crash": trials, "config_change": config}
    finally:
        if master is not None:
            master.close()
        if workers is not None:
            workers.stop()
        coord.close()
        etcd.stop()


LOG_SIGNS = {
    "server_leases_lost": "liveness lease lost",
    "spare_leases_lost": "hotspare.failover.spare WARNING lease",
    "servers_taken_over_while_recording": "while it kept recording",
    "etcd_unavailable": "etcd unavailable",
    "leases_in_doubt": "may have expired",
}


def log_counts(root: Path) -> dict[str, int]:
    """Warnings the simulated nodes logged: a lease lost by a live node means the host could not
    keep up with the simulation (keepalives late), not a verdict on etcd."""
    text = "".join(p.read_text(errors="replace") for p in sorted(root.glob("nodes-*.log")))
    counts = {name: text.count(sign) for name, sign in LOG_SIGNS.items()}
    hedges = []
    for path in sorted(root.glob("nodes-*.hedges.json")):
        try:
            hedges.append(json.loads(path.read_text()))
        except ValueError:  # a node process that died while exiting left it empty: say so
            counts["node_processes_without_hedge_counts"] = (
                counts.get("node_processes_without_hedge_counts", 0) + 1)
    counts["keepalive_hedges_sent"] = sum(h["sent"] for h in hedges)
    counts["keepalive_hedges_withheld"] = sum(h["withheld"] for h in hedges)
    return counts


def members(etcd: EtcdCluster) -> dict[str, tuple[str, int]]:
    out = {}
    for member in etcd.members:
        assert member.pid is not None
        out[member.name] = (member.client_url, member.pid)
    return out


def metrics_context(etcd: EtcdCluster) -> ssl.SSLContext | None:
    return None if etcd.client_tls is None else etcd.client_tls.ssl_context()


def measure_steady(size: Size, etcd: EtcdCluster, coord: Coordinator, master: Master,
                   workers: Workers, seconds: float) -> dict[str, Any]:
    """One window with the whole site running; the master's API is asked meanwhile."""
    print(f"measuring the running site for {seconds:.0f} s ...")
    ids = members(etcd)
    context = metrics_context(etcd)
    before = etcd_stats.sample(ids, context)
    cpu_before = cpu_shares(workers)
    host0 = host_busy()
    workers.send(None, {"rounds": "reset"})
    t0 = time.monotonic()
    cameras = [f"{server_name(i)}-c1" for i in range(0, size.servers, max(1, size.servers // 5))]
    api: dict[str, list[float]] = {"status": [], "cameras": [], "protection": [], "timeline": []}
    failures: list[str] = []
    paths = {"status": lambda: "/site/servers", "cameras": lambda: "/site/cameras",
             "protection": lambda: "/site/protection",
             "timeline": lambda: f"/site/cameras/{cameras[len(api['timeline']) % len(cameras)]}"
                                 "/timeline"}
    while time.monotonic() - t0 < seconds:
        for name, path in paths.items():
            started = time.perf_counter()
            try:
                took, status, _size = master.get(path())
            except httpx.HTTPError as exc:  # the master's answer failed: counted, as its time
                api[name].append(time.perf_counter() - started)
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            api[name].append(took)
            if status != 200:
                failures.append(f"{name}: HTTP {status}")
        time.sleep(1.0)
    elapsed = time.monotonic() - t0
    after = etcd_stats.sample(ids, context)
    busy = busy_since(host0)
    cpu = {name: round((value - cpu_before[name]) / elapsed, 3)
           for name, value in cpu_shares(workers).items()}
    etcd_rates = etcd_stats.rates(before, after, elapsed)
    cpu["etcd"] = etcd_rates["total"]["cpu_fraction"]  # type: ignore[index]
    cores = os.cpu_count() or 1
    cpu["host_busy_cores"] = round(busy * cores, 3)
    cpu["other_processes"] = round(cpu["host_busy_cores"] - sum(
        cpu[k] for k in ("server_processes", "spares_processes", "etcd", "bench_process")), 3)
    rounds, probed = workers.rounds()
    applied = master.view.current
    assert applied is not None
    report_s = timed(lambda: live_report(coord, applied), 5)
    snapshot = snapshot_facts(coord, 5)
    return {
        "etcd": etcd_rates,
        "host_busy_fraction": busy,
        "cpu_cores": cpu,
        "sim_processes_cpu_fraction": round(cpu["server_processes"] + cpu["spares_processes"], 3),
        "spares_process_cpu_fraction": cpu["spares_processes"],
        "spare_detection_round": summary_ms(rounds)
        | {"servers_probed_p50": median(probed), "servers_probed_max": max(probed, default=None)},
        "snapshot": snapshot,
        "protection_report": summary_ms(report_s),
        "master_api": {name: summary_ms(v) for name, v in api.items()},
        "master_api_failures": failures[:10],
    }


def cpu_shares(workers: Workers) -> dict[str, float]:
    """CPU seconds so far: the recording servers' node processes (the simulation's own cost),
    the spares' process (the product's detection), this process (the master's API and the
    benchmark's own polling)."""
    return {"server_processes": total_cpu_seconds(workers.server_pids),
            "spares_processes": total_cpu_seconds(workers.spare_pids),
            "bench_process": cpu_seconds(os.getpid())}


def released(coord: Coordinator, server: str) -> bool:
    return coord.get(layout.claim(server)) is None


def up(coord: Coordinator, server: str) -> bool:
    return released(coord, server) and coord.get(layout.alive(server)) is not None


def claim_since(coord: Coordinator, server: str, at_us: int) -> Any:
    """The claim on `server` made at or after `at_us` (an older one is not this crash's)."""
    kv = coord.get(layout.claim(server))
    return kv if kv is not None and Claim.parse(kv).at_us >= at_us else None


def crash_trials(size: Size, coord: Coordinator, workers: Workers, trials: int,
                 baseline: int = 0) -> dict[str, Any]:
    """Kill a server (never the master), time the claim, revive it, await the handback.
    `baseline`: as many more trials with the spares' probe watch off (`failover/probe_watch`),
    taking turns with the others so both see the same site and load; reported apart."""
    order = [True] * trials
    for index in range(baseline):  # interleaved: on, off, on, off, ...
        order.insert(min(len(order), 2 * index + 1), False)
    rows: list[dict[str, Any]] = []
    step = max(1, (size.servers - 1) // max(1, len(order)))
    all_trials = host_busy()
    watching = True
    for trial, watch in enumerate(order):
        if watch != watching:
            workers.send(None, {"probe_watch": watch})
            for _ in workers.spare_workers:
                workers.wait("probe_watch", watch)
            watching = watch
        server = server_name(1 + (trial * step) % max(1, size.servers - 1))
        try:  # a server taken over while it lived (a starved host) is no trial of a crash
            wait_until(f"{server} alive and unclaimed", partial(up, coord, server), 30, 0.1)
            clean = True
        except TimeoutError:
            clean = False
            print(f"  trial {trial + 1}: {server} was claimed or not alive before the kill, or "
                  "etcd did not say: timed, but left out of the percentiles")
        seen0 = closed_seen(workers)
        host0 = host_busy()
        workers.send(server, {"kill": server})
        killed = workers.wait("killed", server)
        try:
            kv = wait_until(f"a claim on {server}",
                            partial(claim_since, coord, server, killed["at_us"]), 30, 0.02)
        except TimeoutError:
            held = {kv.key.removeprefix(layout.CLAIMS_PREFIX): Claim.parse(kv).spare
                    for kv in coord.get_prefix(layout.CLAIMS_PREFIX).kvs}
            print(f"  trial {trial + 1}: {server} NOT claimed within 30 s (claims held: {held})")
            rows.append({"server": server, "spare": None, "crash_to_claim_s": None,
                         "revive_to_claim_released_s": None, "claims_held": held,
                         "probe_watch": watch, "alive_and_unclaimed_before_kill": clean})
            workers.send(server, {"revive": server})
            workers.wait("revived", server)
            continue
        busy = busy_since(host0)  # from the kill until the claim was seen (± 20 ms)
        noticed = closed_seen(workers) - seen0
        claim = Claim.parse(kv)
        crash_to_claim = (claim.at_us - killed["at_us"]) / 1e6
        workers.send(server, {"revive": server})
        workers.wait("revived", server)
        revived = time.monotonic()
        try:
            wait_until(f"the handback of {server}", partial(released, coord, server), 60, 0.1)
            handback: float | None = round(time.monotonic() - revived, 2)
        except TimeoutError:
            handback = None
        rows.append({"server": server, "spare": claim.spare,
                     "crash_to_claim_s": round(crash_to_claim, 3),
                     "host_busy_fraction_until_claim": busy,
                     "revive_to_claim_released_s": handback, "probe_watch": watch,
                     "closes_seen_by_probe_watches": noticed,
                     "alive_and_unclaimed_before_kill": clean})
        print(f"  trial {trial + 1}{'' if watch else ' (probe watch off)'}: {server} "
              f"claimed by {claim.spare} after "
              f"{crash_to_claim:.3f} s (host {busy:.0%} busy meanwhile); released {handback} s "
              "after revive")
        time.sleep(2.0)
    if not watching:
        workers.send(None, {"probe_watch": True})
        for _ in workers.spare_workers:
            workers.wait("probe_watch", True)
    result = _claims([r for r in rows if r["probe_watch"]])
    result["host_busy_fraction"] = busy_since(all_trials)
    if baseline:
        result["probe_watch_off"] = _claims([r for r in rows if not r["probe_watch"]])
    return result


def closed_seen(workers: Workers) -> int:
    """Probe connections the spares' watches have seen closed so far, all spares together."""
    workers.send(None, {"closed_seen": True})
    return sum(workers.wait("closed_seen")["closed_seen"] for _ in workers.spare_workers)


def _claims(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles over the trials whose server was seen alive and unclaimed before its kill
    (the others, counted in `not_clean`, measured something other than a crash)."""
    clean = [r for r in rows if r["alive_and_unclaimed_before_kill"]]
    values = [r["crash_to_claim_s"] for r in clean if r["crash_to_claim_s"] is not None]
    return {"trials": rows, "not_clean": len(rows) - len(clean),
            "not_claimed": len(clean) - len(values), "crash_to_claim_s": {
        "p50": median(values), "p95": percentile(values, 0.95), "p99": percentile(values, 0.99),
        "max": max(values, default=None)}}


def config_change(apply: list[str], document: dict[str, Any], coord: Coordinator,
                  workers: Workers) -> dict[str, Any]:
    """Add a camera to the last server and apply; per node, the time from the apply's start
    until it held the new revision (`convergence`). The revision is read keys-only: on a loaded
    site a second read of the ~1 MB document is one more request to time out. A failed apply
    whose write landed anyway (a timed-out request that etcd still committed) is measured too."""
    last = document["recording_servers"][-1]
    last["cameras"].append({"id": f"{last['name']}-cnew", "url": "rtsp://127.0.0.1:9/new"})
    Path(apply[-1]).write_bytes(tomli_w.dumps(document).encode())
    before = _config_revision(coord)
    started_us = time.time_ns() // 1000
    status = cli_main(apply)
    applied_s = round((time.time_ns() // 1000 - started_us) / 1e6, 3)
    revision = _config_revision(coord)
    result: dict[str, Any] = {"apply_s": applied_s, "apply_exit": status, "revision": revision}
    if status != 0:
        result["error"] = "site apply failed (its message is printed above)"
    if revision is None or before is None or revision <= before:
        return {**result, "every_spare_s": None, "every_node_s": None}

    def seen(names: list[str]) -> bool:
        return all(workers.config_seen.get(n, (0, 0))[0] >= revision for n in names)

    with contextlib.suppress(TimeoutError):
        wait_until("every node on the new configuration", lambda: seen(workers.nodes),
                   CONFIG_WAIT_S)
    gave_up_us = time.time_ns() // 1000
    spares = convergence(workers.config_seen, workers.spares, revision, started_us, gave_up_us)
    nodes = convergence(workers.config_seen, workers.nodes, revision, started_us, gave_up_us)
    print(describe("spares", spares))
    print(describe("nodes", nodes))
    return {**result, "every_spare_s": spares["max_s"], "every_node_s": nodes["max_s"],
            "spares": spares, "nodes": nodes}


def _config_revision(coord: Coordinator) -> int | None:
    try:
        head = coord.get(layout.SITE_CONFIG, keys_only=True)
    except CoordinationError as exc:
        print(f"the configuration's revision is unreadable: {exc}")
        return None
    return None if head is None else head.mod_revision


# ------------------------------------------------------------------------------ output


def print_site(result: dict[str, Any]) -> None:
    etcd = result["etcd"]
    total = etcd["total"]
    rows = [[name, m["requests_per_s"], round(m["sent_bytes_per_s"] / 2**20, 2),
             m["cpu_fraction"], m["rss_mb"], int(m["watchers"]), int(m["keys"])]
            for name, m in etcd["members"].items()]
    rows.append(["all", total["requests_per_s"], round(total["sent_bytes_per_s"] / 2**20, 2),
                 total["cpu_fraction"], total["rss_mb"], int(total["watchers"]), "-"])
    print(table(["etcd member", "req/s", "sent MB/s", "CPU", "RSS MB", "watchers", "keys"],
                rows))
    snap = result["snapshot"]
    print(f"\nsnapshot read: {snap['keys']} keys, {snap['value_bytes'] / 1024:.0f} KiB of values, "
          f"p50 {snap['read']['p50_ms']} ms; protection report p50 "
          f"{result['protection_report']['p50_ms']} ms")
    cpu = result["cpu_cores"]
    print(f"CPU (cores) in the window: simulated servers {cpu['server_processes']}, spares "
          f"{cpu['spares_processes']}, etcd {cpu['etcd']}, master + bench {cpu['bench_process']}, "
          f"other processes {cpu['other_processes']}; the host was "
          f"{result['host_busy_fraction']:.0%} busy ({cpu['host_busy_cores']} of "
          f"{os.cpu_count()} cores)")
    rounds = result["spare_detection_round"]
    print(f"spare detection round (probe its share, judge): p50 {rounds['p50_ms']} ms, "
          f"p95 {rounds['p95_ms']} ms, n {rounds['n']}, servers probed p50 "
          f"{rounds['servers_probed_p50']}; node warnings {result['node_logs']}")
    api = result["master_api"]
    print(table(["master site API", "n", "p50 ms", "p95 ms", "max ms"],
                [[k, v["n"], v["p50_ms"], v["p95_ms"], v["max_ms"]] for k, v in api.items()]))
    claim = result["crash"]["crash_to_claim_s"]
    off = result["crash"].get("probe_watch_off", {}).get("crash_to_claim_s")
    for label, part in (("", result["crash"]), (" (watch off)", result["crash"].get(
            "probe_watch_off", {}))):
        if part.get("not_clean"):
            print(f"crash trials{label} left out: {part['not_clean']} (the server was not seen "
                  "alive and unclaimed before its kill)")
    conf = result["config_change"]
    print(table(["after", "p50", "p95", "p99", "max", "goal"],
                [["crash -> claim (s)", claim["p50"], claim["p95"], claim["p99"], claim["max"],
                  f"p95 <= {GOAL_CLAIM_P95_S}"],
                 *([["  baseline: probe watch off", off["p50"], off["p95"], off["p99"],
                     off["max"], "-"]] if off is not None else []),
                 *([f"config -> {group} (s)", conf[group]["p50_s"], None, None,
                    conf[group]["max_s"], f"{conf[group]['converged']}/{conf[group]['n']} "
                    "converged"] for group in ("spares", "nodes") if group in conf)]))


def print_curve(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        t = r["etcd"]["total"]
        rows.append([r["size"]["servers"], r["size"]["cameras"], r["size"]["spares"],
                     t["cpu_fraction"], etcd_stats.busiest(r["etcd"]["members"], "cpu_fraction"),
                     t["requests_per_s"], round(t["sent_bytes_per_s"] / 2**20, 1),
                     r["snapshot"]["read"]["p50_ms"], r["spare_detection_round"]["p95_ms"],
                     r["crash"]["crash_to_claim_s"]["p95"],
                     r["master_api"]["status"]["p95_ms"]])
    print("\n" + table(["servers", "cameras", "spares", "etcd CPU", "busiest", "req/s",
                        "sent MB/s", "snapshot ms", "round p95 ms", "claim p95 s",
                        "status p95 ms"], rows))


def plot(results: list[dict[str, Any]], path: Path) -> Path | None:
    """A PNG of the curve when matplotlib is installed (the `bench` extra); None otherwise."""
    xs = [r["size"]["servers"] for r in results]
    series = [("etcd CPU (cores, 3 members)", [r["etcd"]["total"]["cpu_fraction"]
                                               for r in results]),
              ("etcd requests/s", [r["etcd"]["total"]["requests_per_s"] for r in results]),
              ("crash -> claim p95 (s)", [r["crash"]["crash_to_claim_s"]["p95"]
                                          for r in results]),
              ("spare detection round p95 (ms)", [r["spare_detection_round"]["p95_ms"]
                                                  for r in results])]
    return plot_panels(path, xs, "recording servers (50 cameras each)",
                       [(title, {title: ys}) for title, ys in series])


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.site_scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", type=int, default=200)
    p.add_argument("--cameras", type=int, default=None, help="default: 50 per server")
    p.add_argument("--spares", type=int, default=None, help="default: 1 per 50 servers, min 2")
    p.add_argument("--trials", type=int, default=5, help="servers killed one after another")
    p.add_argument("--seconds", type=float, default=30.0, help="steady-state window")
    p.add_argument("--settle", type=float, default=5.0, help="pause before the window")
    p.add_argument("--curve", default=None,
                   help="comma-separated server counts: one whole site each, same run")
    p.add_argument("--include", type=Path, action="append", default=[], metavar="RESULT",
                   help="with --curve: add the sites of an earlier result file to the curve "
                   "(e.g. the one full-size run)")
    p.add_argument("--plot-only", action="store_true",
                   help="run nothing: the curve table and plot of the --include files")
    p.add_argument("--quick", action="store_true",
                   help="10 servers, 500 cameras, 2 spares, 2 kills (one the baseline's), 6 s "
                   "window (< 60 s)")
    p.add_argument("--monitors", choices=["all", "master"], default="all",
                   help="which nodes run the protection monitor: every node, as the product "
                   "does, or the master's only (a host too small to simulate them all)")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness of the simulated recording servers' processes (POSIX; default "
                   "0). 10 made them yield the CPU to the spares and etcd, but on a host with no "
                   "idle core it starved them: leases lost, spares' questions through etcd, a "
                   "site that never came up (bench/README.md)")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="write each node process's CPU profile there (needs yappi)")
    p.add_argument("--etcd-plaintext", action="store_true",
                   help="etcd over plain HTTP (default: client and peer TLS, as in production)")
    p.add_argument("--baseline-trials", type=int, default=0,
                   help="as many more crash trials with the spares' probe watch off, taking "
                   "turns with the others (the baseline for crash -> claim; default 0)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args(argv)
    if args.quick:
        args.servers, args.cameras, args.spares = 10, 500, 2
        args.trials, args.seconds, args.settle = 1, 6.0, 1.0
        args.baseline_trials = 1
    return args


def size_for(servers: int, args: argparse.Namespace, scale_cameras: bool) -> Size:
    cameras = 50 * servers if (args.cameras is None or scale_cameras) else args.cameras
    spares = args.spares if args.spares is not None else max(2, servers // 50)
    return Size(servers, cameras, spares)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    if args.plot_only:
        curve = sorted(included(args.include), key=lambda r: r["size"]["servers"])
        print_curve(curve)
        png = plot(curve, args.out or RESULTS_DIR / f"site-scale-curve-{started:%Y-%m-%d}.png")
        print(f"plot: {png}" if png else "plot: matplotlib not installed (the table above)")
        return 0
    counts = [int(c) for c in args.curve.split(",")] if args.curve else [args.servers]
    sizes = [size_for(n, args, scale_cameras=bool(args.curve)) for n in counts]
    root = work_dir("site-scale")
    results: list[dict[str, Any]] = []
    with LoadSampler() as load:
        try:
            for size in sizes:
                site_root = root / f"s{size.servers}"
                result = run_site(size, args, site_root)
                results.append(result)
                print_site(result)
                if len(results) < len(sizes):  # a failure in a bigger site keeps these
                    save(results, args, started, load.facts())
        finally:
            remove_work_dir(root, args.keep)
    print()
    print(load.line())
    save(results, args, started, load.stop())
    last = results[-1]
    claim_p95 = last["crash"]["crash_to_claim_s"]["p95"]
    status_p95 = last["master_api"]["status"]["p95_ms"]
    met = (claim_p95 is not None and claim_p95 <= GOAL_CLAIM_P95_S and status_p95 is not None
           and status_p95 / 1000 <= GOAL_STATUS_S)
    return 0 if met or args.quick else 1


def included(paths: list[Path]) -> list[dict[str, Any]]:
    """Sites measured by earlier runs, each marked with the file it came from."""
    out = []
    for path in paths:
        for site in json.loads(path.read_text())["sites"]:
            out.append(site | {"from_result": path.name})
    return out


def save(results: list[dict[str, Any]], args: argparse.Namespace, started: dt.datetime,
         load: dict[str, Any]) -> None:
    """Write the result (again, after each site of a curve), the curve table and plot."""
    name = "site-scale-curve" if args.curve else "site-scale"
    png = None
    curve = sorted([*results, *included(args.include)], key=lambda r: r["size"]["servers"])
    if len(curve) > 1:
        print_curve(curve)
        png = plot(curve, (args.out.with_suffix(".png") if args.out else
                           RESULTS_DIR / f"{name}-{started:%Y-%m-%d}.png"))
        print(f"plot: {png}" if png else "plot: matplotlib not installed (the table above)")
    last = results[-1]
    claim_p95 = last["crash"]["crash_to_claim_s"]["p95"]
    status_p95 = last["master_api"]["status"]["p95_ms"]
    goals = {"crash_to_claim_p95_s": {"goal": GOAL_CLAIM_P95_S, "value": claim_p95,
                                      "met": claim_p95 is not None
                                      and claim_p95 <= GOAL_CLAIM_P95_S},
             "master_status_p95_s": {"goal": GOAL_STATUS_S,
                                     "value": None if status_p95 is None else status_p95 / 1000,
                                     "met": status_p95 is not None
                                     and status_p95 / 1000 <= GOAL_STATUS_S}}
    write_result(name, {"args": {k: v for k, v in vars(args).items() if k != "out"},
                        "goals": goals, "sites": results,
                        "included_sites": [{"from": r["from_result"], "size": r["size"]}
                                           for r in curve if "from_result" in r],
                        "plot": None if png is None else png.name},
                 started=started, load=load, quick=args.quick, out=args.out,
                 tools={"etcd": first_line([str(find_etcd_binary()), "--version"])})
