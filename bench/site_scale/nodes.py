"""A process hosting many simulated site nodes: `python -m bench.site_scale.nodes SPEC.json`.

Each node is what `hotspare.node.site_node` builds, minus video and minus its FastAPI app: its
own `Coordinator` (own etcd sessions, leases and watches), a `SiteView` watching `config/`, an
`EventLog`, the `ProtectionMonitor` every site node runs, and its agent — the real `ServerAgent`
fed by `stubs.SyntheticCommits`, or the real `SpareAgent` whose takeover recorder is
`stubs.StubRecorder`. Nodes run on threads, as the product's own loops do; a recording server's
port is answered by `stubs.NodeHttp`.

A server's port comes bound from the benchmark (its descriptor is inherited), so that no other
process takes it between the site file naming it and the node listening.

Commands arrive on stdin, one JSON object a line: {"kill": server} (abrupt: the port refuses,
keepalives and watches stop, nothing is revoked — a dead process), {"revive": server},
{"rounds": "reset" | "report"} (each spare's detection round times), {"quit": true}. Facts go
to stdout the same way: {"ready": n}, {"killed": server, "at_us"}, {"revived": server},
{"rounds": {spare: [seconds]}, "probed": {spare: [servers probed]}}, {"config": node, "rev",
"at_us"} at each configuration change a node sees.

The spec's `nice` lowers this process's priority (`--nice`, 0 by default: a niced process of 50
servers starves on a host with no idle core, and its servers lose their leases); `profile` writes
where this process's CPU went (yappi, CPU clock, every thread) to that file at quit. The
keepalive hedges its nodes sent and withheld go to `<worker>.hedges.json` every 2 s.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.site_scale.stubs import HttpLoop, NodeHttp, StubRecorder, SyntheticCommits
from hotspare.config.models import SiteMembership
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.failover.probe_watch import ProbeWatch
from hotspare.failover.protection import ProtectionMonitor
from hotspare.failover.server_agent import ServerAgent
from hotspare.failover.spare_agent import SpareAgent, SpareView
from hotspare.signing_keys import install_trust_roots, read_trust_roots
from hotspare.sitestate import layout
from hotspare.sitestate.access import EtcdSite
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.events import EventLog
from hotspare.sitestate.view import SiteView
from hotspare.store.segment_store import SegmentStore

_out_lock = threading.Lock()


def say(**fact: Any) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(fact) + "\n")
        sys.stdout.flush()


class SimNode:
    """What every site node runs besides its role: etcd session, config view, events, monitor."""

    def __init__(self, name: str, membership: SiteMembership, data_dir: Path,
                 monitor: bool) -> None:
        self.name = name
        self.membership = membership
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.coord = Coordinator.for_member(membership, name)
        self.view = SiteView(self.coord, data_dir / "site-cache.json")
        if self.view.load_initial(30.0) is None:
            raise RuntimeError(f"{name}: no site configuration in etcd")
        self.events = EventLog(self.coord, name, membership.events_keep)
        self.monitor = (ProtectionMonitor(self.coord, name, lambda: self.view.current,
                                          self.events,
                                          start_grace=max(10.0, membership.startup_grace_seconds))
                        if monitor else None)
        self.view.on_change(self._config_seen)

    def _config_seen(self, applied: AppliedSite) -> None:
        say(config=self.name, rev=applied.mod_revision, at_us=time.time_ns() // 1000)
        if self.monitor is not None:
            self.monitor.wake()

    def start_common(self) -> None:
        self.view.watch()
        if self.monitor is not None:
            self.monitor.start()

    def die(self) -> None:
        """Everything stops at once and nothing is given back (leases run out on their own)."""
        if self.monitor is not None:
            self.monitor._stop.set()
            self.monitor._wake.set()
        self.coord.close()


class SimServer(SimNode):
    def __init__(self, name: str, port: int, membership: SiteMembership, data_dir: Path,
                 monitor: bool, http: HttpLoop, fd: int | None = None) -> None:
        super().__init__(name, membership, data_dir, monitor)
        applied = self.view.current
        assert applied is not None
        me = applied.config.recording_server(name)
        assert me is not None, f"{name} is not a recording server of the site"
        self.commits = SyntheticCommits(name, [c.id for c in me.cameras],
                                        me.recording.segment_seconds)
        self.url = f"http://127.0.0.1:{port}"
        sock = None if fd is None else socket.socket(fileno=fd)
        self.http = NodeHttp(http, name, port, self.commits, sock)
        self.agent = ServerAgent(EtcdSite(self.coord), name, self.url,
                                 membership.lease_ttl_seconds, self.commits.health, self.events)
        self.view.on_change(self._follow)

    def _follow(self, applied: AppliedSite) -> None:
        me = applied.config.recording_server(self.name)
        if me is not None:
            ids = [c.id for c in me.cameras]
            if ids != self.commits.cameras:
                fresh = SyntheticCommits(self.name, ids, me.recording.segment_seconds,
                                         self.commits.started_us)
                self.commits = self.http.commits = fresh
                self.agent.health = fresh.health
        self.agent.wake()

    def start(self) -> None:
        self.http.start()
        self.start_common()
        self.agent.start()

    def kill(self) -> int:
        at_us = time.time_ns() // 1000
        self.http.close()
        self.agent._stop.set()
        self.agent._wake.set()
        if self.agent._keeper is not None:
            self.agent._keeper.stop(revoke=False)
        self.die()
        return at_us


class SimSpare(SimNode):
    def __init__(self, name: str, port: int, token: str, membership: SiteMembership,
                 data_dir: Path, monitor: bool) -> None:
        super().__init__(name, membership, data_dir, monitor)
        self.idle_store = SegmentStore.open(data_dir / "idle-store", name)
        view = SpareView(self.idle_store, lambda _store: None)
        self.agent = SpareAgent(EtcdSite(self.coord), name, f"http://127.0.0.1:{port}", token,
                                data_dir, membership, self.view, self.events, view)
        self.agent.ctx.make_recorder = StubRecorder  # type: ignore[assignment]  # a stand-in
        # No camera sessions at a claim either: the cameras are not simulated, and the real
        # early sessions (`failover/early_sessions.py`) would retry their connects for the rest of
        # the run, a thread each per camera of every server claimed (thousands of refused
        # connects per spare in a 100-server run before this), a cost no real spare pays.
        self.agent.ctx.open_sessions = lambda *_args, **_kwargs: {}  # type: ignore[assignment]
        self.view.on_change(lambda _applied: self.agent.wake())
        self.rounds: list[float] = []
        self.probed: list[int] = []
        detect = self.agent.detector.run

        def timed_round(*args: Any, **kwargs: Any) -> bool:
            """How long one detection round (probe this spare's share, judge) takes."""
            started = time.perf_counter()
            try:
                return detect(*args, **kwargs)
            finally:
                self.rounds.append(time.perf_counter() - started)
                self.probed.append(self.agent.detector.probed)

        self.agent.detector.run = timed_round  # type: ignore[method-assign]

    def start(self) -> None:
        self.start_common()
        self.agent.start()
        self.coord.watch_prefix(layout.ALIVE_PREFIX, self.agent.wake)
        self.coord.watch_prefix(layout.CLAIMS_PREFIX, self.agent.wake)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    root = Path(spec["data_dir"])
    logging.basicConfig(filename=root / f"{spec['worker']}.log", level=logging.WARNING,
                        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    if spec.get("nice") and hasattr(os, "nice"):  # POSIX; on Windows the processes stay equal
        os.nice(spec["nice"])
    profile = Profile(Path(spec["profile"])) if spec.get("profile") else None
    membership = SiteMembership.model_validate(spec["membership"])
    install_trust_roots(read_trust_roots(Path(spec["licence_keys"])))
    http = HttpLoop()
    every = spec["monitors"] == "all"  # else only the master's node runs one
    servers: dict[str, SimServer] = {}
    spares: list[SimSpare] = []
    nodes: list[SimServer | SimSpare] = []
    failed: list[str] = []
    for item in spec["servers"]:
        monitor = every or item["name"] == spec["master"]
        try:
            node = SimServer(item["name"], item["port"], membership, root / item["name"],
                             monitor, http, item["fd"])
            node.start()
        except Exception:  # a real node would exit and be restarted; the others go on
            logging.exception("%s did not start", item["name"])
            failed.append(item["name"])
            continue
        servers[item["name"]] = node
        nodes.append(node)
    for item in spec["spares"]:
        spare = SimSpare(item["name"], item["port"], spec["token"], membership,
                         root / item["name"], every)
        spare.start()
        spares.append(spare)
    nodes.extend(spares)
    say(ready=len(nodes), failed=failed)
    started: list[SimNode] = list(nodes)  # every node this process ran, killed ones included
    threading.Thread(target=write_hedges, args=(root / f"{spec['worker']}.hedges.json", started),
                     daemon=True).start()
    for line in sys.stdin:
        command = json.loads(line)
        if "kill" in command:
            name = command["kill"]
            say(killed=name, at_us=servers[name].kill())
        elif "revive" in command:
            name = command["revive"]
            old = servers[name]
            node = SimServer(name, old.http.port, membership, root / name,
                             old.monitor is not None, http)
            servers[name] = node
            node.start()
            started.append(node)
            say(revived=name)
        elif "rounds" in command:  # "reset" or "report"
            if command["rounds"] == "report":
                say(rounds={s.name: [round(r, 4) for r in s.rounds] for s in spares},
                    probed={s.name: s.probed for s in spares})
            for spare in spares:
                spare.rounds.clear()
                spare.probed.clear()
        elif command.get("closed_seen"):  # connections the spares' probe watches saw closed
            say(closed_seen=sum(spare.agent.probe_watch.closed_seen for spare in spares))
        elif "probe_watch" in command:  # the baseline: crash trials without the watch
            for spare in spares:
                spare.agent.probe_watch.stop()
                if command["probe_watch"]:
                    spare.agent.probe_watch = ProbeWatch(spare.agent.prober,
                                                         spare.agent.connection_closed)
                    spare.agent.probe_watch.start()
            say(probe_watch=command["probe_watch"])
        elif command.get("quit"):
            break
    if profile is not None:
        profile.dump()
    return 0


def write_hedges(path: Path, nodes: list[SimNode]) -> None:
    """Every 2 s, the keepalive hedges this process's nodes sent and withheld (the benchmark
    sums the files into `node_logs`)."""
    while True:
        totals = {"sent": 0, "withheld": 0}
        for node in list(nodes):
            totals["sent"] += node.coord.hedges.sent
            totals["withheld"] += node.coord.hedges.withheld
        path.write_text(json.dumps(totals))
        time.sleep(2.0)


class Profile:
    """Where this process's CPU goes, per function over every thread (yappi, CPU clock)."""

    def __init__(self, path: Path) -> None:
        try:
            import yappi  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            raise SystemExit("--profile needs yappi (pip install yappi)") from None
        self.yappi = yappi
        self.path = path
        yappi.set_clock_type("cpu")
        yappi.start(builtins=True)

    def dump(self) -> None:
        self.yappi.stop()
        stats = self.yappi.get_func_stats()
        stats.sort("tsub", "desc")
        with self.path.open("w") as out:
            stats.print_all(out=out, columns={0: ("name", 100), 1: ("ncall", 10),
                                              2: ("tsub", 9), 3: ("ttot", 9), 4: ("tavg", 9)})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
