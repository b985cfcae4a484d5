"""A whole failover site for end-to-end tests: etcd, simulated cameras, licences, real nodes.

    with FailoverSite(tmp_path, servers={"rec-1": 4}, spares=["spare-1"]) as site:
        site.start_all()
        site.node("rec-1").kill()
        ...

Every process it starts (etcd, camera sim, nodes) is stopped on exit, also when the test fails.
Ports are picked up front because the site configuration names every node's address.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import tomli_w

from hotspare.camerasim.sei import FrameTag
from hotspare.cli.main import main as cli_main
from hotspare.coordination.errors import EtcdUnavailableError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.etcd_process import EtcdCluster
from hotspare.demo.site_files import ServerPlan, SitePlan, SparePlan, write_site
from hotspare.sitestate import layout
from hotspare.sitestate.events import Event, read_events
from hotspare.store.models import SegmentInfo
from hotspare.store.segment_store import SegmentStore
from tests.support.camsim import CameraSim
from tests.support.etcd import start_etcd_cluster
from tests.support.frames import counted_frames
from tests.support.node import NodeProcess

TOKEN = "site-test-token-0123456789"


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`.

    The test's own etcd reads may find etcd busy (a frozen member, a loaded machine) as the
    nodes do: that is "not yet", not the test's failure, until the deadline says otherwise."""
    deadline = time.monotonic() + timeout
    last_error: EtcdUnavailableError | None = None
    while True:
        try:
            value = check()
        except EtcdUnavailableError as exc:
            value, last_error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f" (etcd was unavailable to the test: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(interval)


@dataclass
class SiteNode:
    process: NodeProcess
    port: int
    role: str


class FailoverSite:
    def __init__(self, tmp: Path, servers: dict[str, int], spares: list[str], *,
                 lease_ttl: float = 2.0, segment_seconds: float = 1.0, fps: int = 10,
                 reinsert_bytes_per_second: int = 20_000_000, spare_licences: int | None = None,
                 camera_licences: int = 64, startup_grace: float = 5.0,
                 etcd_size: int = 1, server_options: dict[str, dict[str, Any]] | None = None,
                 shared_paths: dict[str, int] | None = None, etcd_tls: bool = True,
                 users: list[dict[str, str]] | None = None) -> None:
        """`server_options`: extra site.toml fields per recording server (e.g. `platform`,
        `frame_grabber_inputs`). `shared_paths`: server -> N, that server's cameras are served
        by only its first N sim cameras (ids beyond N point at them in turn), so a test can give
        a server many cameras without paying for as many simulated ones. `etcd_tls=False`:
        plain-HTTP etcd (nodes then say etcd_insecure_plaintext), for measuring what TLS costs.
        `users`: `[[api.users]]` of every node ({"name", "role", "token_hash"})."""
        self.tmp = tmp
        self.site_id = "testsite"
        self.servers = servers
        self.spares = spares
        self.lease_ttl = lease_ttl
        self.segment_seconds = segment_seconds
        self.fps = fps
        self.reinsert_rate = reinsert_bytes_per_second
        self.spare_licences = len(spares) if spare_licences is None else spare_licences
        self.camera_licences = camera_licences
        self.startup_grace = startup_grace
        self.etcd_size = etcd_size
        self.etcd_tls = etcd_tls
        self.cameras = {name: [f"{name}-c{i}" for i in range(1, count + 1)]
                        for name, count in servers.items()}
        self.server_options = server_options or {}
        self.shared_paths = shared_paths or {}
        self.users = users or []
        self.hold_streams = False  # one extra reader per camera (see RtspHolders); off by default
        self.camera_streams: dict[str, str] = {}  # sim camera -> stream, e.g. "audio=aac"
        self.etcd: EtcdCluster | None = None
        self.sim: CameraSim | None = None
        self.nodes: dict[str, SiteNode] = {}
        self.coord: Coordinator | None = None
        self.holders: RtspHolders | None = None
        self.site_doc: dict[str, Any] = {}

    # ------------------------------------------------------------------ set-up

    def __enter__(self) -> FailoverSite:
        try:
            self.etcd = start_etcd_cluster(self.tmp / "etcd", self.etcd_size, tls=self.etcd_tls)
            all_cameras = list(dict.fromkeys(self.sim_camera(c)
                                             for cams in self.cameras.values() for c in cams))
            self.sim = CameraSim(self.tmp / "camsim", cameras=all_cameras, width=320, height=240,
                                 fps=self.fps, gop="1s", bitrate_kbps=300,
                                 streams=self.camera_streams).start()
            self.coord = Coordinator(self.etcd.endpoints, layout.site_prefix(self.site_id),
                                     timeout=1.0, deadline=5.0, tls=self.etcd.client_tls,
                                     insecure_plaintext=self.etcd.insecure_plaintext)
            if self.hold_streams:
                self.holders = RtspHolders([self.sim.rtsp_url(c) for c in all_cameras])
                self.holders.__enter__()
            self._write_site()
            self.apply_site()
        except BaseException:
            self.close()
            raise
        return self

    def apply_site(self) -> None:
        """`hotspare site apply site.toml` with this site's etcd client certificate."""
        assert self.etcd is not None
        assert cli_main(["site", "apply", str(self.tmp / "site.toml"),
                         *self.etcd.cli_args()]) == 0

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        # Spares first: one still running when a server dies here may claim it and be killed
        # while opening its buffer store (an index without its schema, which the store check
        # after each test then reports).
        for node in sorted(self.nodes.values(), key=lambda n: n.role != "spare"):
            proc = node.process.process
            if proc is not None and proc.poll() is None:
                try:
                    node.process.thaw()
                except (OSError, AssertionError):
                    pass
                node.process.kill()
        if self.coord is not None:
            self.coord.close()
        if self.holders is not None:
            self.holders.__exit__(None, None, None)
        if self.sim is not None:
            self.sim.stop()
        if self.etcd is not None:
            self.etcd.stop()

    def _write_site(self) -> None:
        """Lay the site out with the demo's own writer (hotspare.demo.site_files)."""
        assert self.etcd is not None and self.sim is not None
        sim = self.sim
        plan = SitePlan(
            site_id=self.site_id, etcd_endpoints=self.etcd.endpoints, token=TOKEN,
            servers=[ServerPlan(name, {c: sim.rtsp_url(self.sim_camera(c)) for c in cams},
                                role="master" if index == 0 else "recording",
                                extra=dict(self.server_options.get(name, {})))
                     for index, (name, cams) in enumerate(self.cameras.items())],
            spares=[SparePlan(name) for name in self.spares],
            spare_licences=self.spare_licences, camera_licences=self.camera_licences,
            recording={"segment_seconds": self.segment_seconds,
                       "reconnect_initial_seconds": 0.2, "reconnect_max_seconds": 1.0,
                       "open_timeout_seconds": 3.0},
            membership={"lease_ttl_seconds": self.lease_ttl, "probe_interval_seconds": 0.2,
                        "probe_timeout_seconds": 0.5,
                        "startup_grace_seconds": self.startup_grace,
                        "reinsert_bytes_per_second": self.reinsert_rate},
            etcd_pki=self.etcd.pki,
            users=self.users,
        )
        files = write_site(self.tmp, plan)
        ports = {n.name: n.port for n in [*plan.servers, *plan.spares]}
        for name, path in files.node_tomls.items():
            process = NodeProcess(name=name, config_path=path, data_dir=path.parent / "data",
                                  token=TOKEN, log_path=path.parent / "node.log")
            role = "recording" if name in self.servers else "spare"
            self.nodes[name] = SiteNode(process, ports[name], role)
        self.site_doc = files.document

    def sim_camera(self, camera: str) -> str:
        """The sim camera (RTSP path) serving `camera` (itself unless its server shares paths)."""
        server, _, number = camera.rpartition("-c")
        shared = self.shared_paths.get(server)
        if shared is None or not number.isdigit():
            return camera
        return f"{server}-c{(int(number) - 1) % shared + 1}"

    def reapply(self, mutate: Callable[[dict[str, Any]], None]) -> None:
        """Change the site configuration and `site apply` it again (nodes pick it up live)."""
        mutate(self.site_doc)
        (self.tmp / "site.toml").write_bytes(tomli_w.dumps(self.site_doc).encode())
        self.apply_site()

    # ------------------------------------------------------------------ running

    def node(self, name: str) -> NodeProcess:
        return self.nodes[name].process

    def api_url(self, name: str) -> str:
        """Where a node's API answers (NetSite: on its own host's address)."""
        return f"http://127.0.0.1:{self.nodes[name].port}"

    def start(self, name: str) -> None:
        self.node(name).start(timeout=30.0)

    def start_all(self, timeout: float = 30.0) -> None:
        """Servers first (until each publishes liveness), then spares: a spare started before its
        servers would, correctly, take over servers that are not up. The nodes of a group start
        side by side: one by one, each waited for the one before it (~1 s of imports each, most
        of a node's start-up)."""
        self.start_together(list(self.servers))
        for name in self.servers:
            wait_for(f"{name} liveness", lambda n=name: self.alive(n), timeout)
        self.start_together(self.spares)
        for name in self.spares:
            wait_for(f"{name} registered", lambda n=name: self.get(layout.spare(n)), timeout)

    def start_together(self, names: list[str]) -> None:
        """`start` each of `names` at once, each in a thread of its own (NetSite's start enters
        the node's host in the calling thread); the first failure is raised."""
        if len(names) < 2:
            for name in names:
                self.start(name)
            return
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            for future in [pool.submit(self.start, name) for name in names]:
                future.result()

    def get(self, key: str) -> dict[str, Any] | None:
        assert self.coord is not None
        kv = self.coord.get(key)
        return None if kv is None else dict(kv.json())

    def alive(self, server: str, confirmed: bool = False) -> bool:
        value = self.get(layout.alive(server))
        return value is not None and (not confirmed or bool(value.get("confirmed")))

    def claim(self, server: str) -> dict[str, Any] | None:
        return self.get(layout.claim(server))

    def events(self) -> list[Event]:
        assert self.coord is not None
        return read_events(self.coord)[0]

    def event_lines(self) -> str:
        return "\n".join(e.line() for e in self.events())

    def wait_event(self, kind: str | tuple[str, ...], server: str | None = None,
                   node: str | None = None, timeout: float = 30.0, after_us: int = 0) -> Event:
        """The first event of `kind` (or of any of several kinds) matching the rest."""
        kinds = (kind,) if isinstance(kind, str) else kind

        def found() -> Event | None:
            for event in self.events():
                if (event.kind in kinds and (server is None or event.server == server)
                        and (node is None or event.node == node) and event.wall_us >= after_us):
                    return event
            return None

        try:
            return wait_for(f"event {'/'.join(kinds)} {server or ''}", found, timeout, 0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nevents so far:\n{self.event_lines()}") from None

    def store_of(self, name: str) -> SegmentStore:
        """Open a stopped node's store (a running node holds its lock)."""
        return SegmentStore.open(self.node(name).data_dir / "store", name)


# ---------------------------------------------------------------------- frames in stored video


def stored_tags(store: SegmentStore, segment: SegmentInfo, *,
                partial_join_ok: bool = False) -> list[FrameTag]:
    """The frames a segment contributes to the timeline (skipped head/tail frames left out);
    `partial_join_ok` as in tests.support.frames.counted_frames."""
    return [frame.tag for frame in counted_frames(store, segment,
                                                  partial_join_ok=partial_join_ok)]


def camera_frames(store: SegmentStore, camera_id: str) -> list[FrameTag]:
    segments = sorted(store.list_segments(camera_id, 0, 2**62),
                      key=lambda s: (s.start_wall_us, s.segment_id))
    return [tag for seg in segments for tag in stored_tags(store, seg)]


def summary(data: Any) -> str:
    return json.dumps(data, indent=1, default=str)


def iter_missing_windows(missing: list[int]) -> Iterator[tuple[int, int]]:
    """Contiguous runs of missing frame numbers as (first, last)."""
    if not missing:
        return
    start = prev = missing[0]
    for number in missing[1:]:
        if number != prev + 1:
            yield start, prev
            start = number
        prev = number
    yield start, prev


class RtspHolders:
    """One extra RTSP client per camera for the length of a test or benchmark.

    Written as a workaround for a camera-sim bug (a reconnect right after the last client left was
    refused), since fixed in the sim (docs/camera-sim.md). Off by default (`hold_streams`); still
    useful to make every recorder connection a join of a stream already playing, as when a
    spare keeps a camera's stream open.
    """

    def __init__(self, urls: list[str]) -> None:
        import threading

        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._hold, args=(url,), daemon=True)
                         for url in urls]

    def _hold(self, url: str) -> None:
        while not self._stop.is_set():
            try:
                with av.open(url, options={"rtsp_transport": "tcp", "stimeout": "3000000"},
                             timeout=3.0) as container:
                    for _packet in container.demux(container.streams.video[0]):
                        if self._stop.is_set():
                            return
            except Exception:
                self._stop.wait(0.5)

    def __enter__(self) -> RtspHolders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)


def check_exact(site: FailoverSite, server: str, allowed: list[tuple[int, int]],
                end_us: int, restart_us: int | None = None) -> dict[str, list[tuple[float, float]]]:
    """Per camera of `server` (stopped): no frame stored twice, and every delivered frame between
    the first and last stored one is present unless it falls in an `allowed` window (wall µs).

    `restart_us` is accepted for the callers' sake and no longer widens anything: the frame the
    importer used to trim at the original's restart edge (its first run anchored one frame early,
    fixed in the recorder's clock) must now be present like any other.

    Returns the missing stretches per camera (seconds since the epoch) for the test's report.
    """
    del restart_us
    assert site.sim is not None
    store = site.store_of(server)
    report: dict[str, list[tuple[float, float]]] = {}
    try:
        for camera in site.cameras[server]:
            numbers = [t.frame_no for t in camera_frames(store, camera)]
            twice = sorted(n for n in set(numbers) if numbers.count(n) > 1)
            assert not twice, f"{camera}: frames stored twice: {twice[:20]}"
            site.sim.wait_logged(camera, end_us)
            first, last = min(numbers), max(numbers)
            sent = {r.frame: r.wall_us for r in site.sim.frames(camera)
                    if r.delivered and first <= r.frame <= last}
            missing = sorted(set(sent) - set(numbers))
            for number in missing:
                wall = sent[number]
                assert any(a <= wall <= b for a, b in allowed), (
                    f"{camera}: frame {number} at {wall} is missing outside the allowed windows "
                    f"{allowed}")
            report[camera] = [(sent[a] / 1e6, sent[b] / 1e6)
                              for a, b in iter_missing_windows(missing)]
    finally:
        store.close()
    return report


@dataclass(frozen=True)
class MidReinsert:
    """Where `crash_until_mid_reinsert` left the site: what the frame check needs, and the
    re-insert progress at the moment it returned."""

    crash_us: int
    recording: Event
    restart_us: int
    progress: dict[str, Any]

    def allowed(self) -> list[tuple[int, int]]:
        """The window a standard camera may miss: from before the crash to the spare recording."""
        return [(self.crash_us - 1_500_000, self.recording.wall_us)]


def crash_until_mid_reinsert(site: FailoverSite, server: str, spare: str,
                             covered_seconds: float, min_done: int = 3) -> MidReinsert:
    """SIGKILL `server`, let `spare` cover it for `covered_seconds`, restart it, and return once
    `min_done` segments are re-inserted but not all: the moment to interrupt a re-insert in."""
    time.sleep(1.5)
    crash_us = time.time_ns() // 1000
    site.node(server).kill()
    site.wait_event("claimed", server, timeout=15)
    recording = site.wait_event("recording", server, timeout=20)
    time.sleep(covered_seconds)
    restart_us = time.time_ns() // 1000
    site.start(server)
    site.wait_event("reinserting", server, timeout=30, after_us=restart_us)
    key = layout.reinsert(server, spare)
    progress = wait_for(f"{min_done} segments re-inserted", lambda: (
        (site.get(key) or {}).get("done", 0) >= min_done and site.get(key)), 30)
    assert progress["done"] < progress["total"], progress
    return MidReinsert(crash_us, recording, restart_us, progress)
