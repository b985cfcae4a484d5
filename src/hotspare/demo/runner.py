"""`hotspare demo`: a whole failover site on this machine, narrated as it runs.

Starts a single-member etcd, simulated cameras, two recording servers (rec-1 is the master) and a
spare, each a real `hotspare node` process, then prints where everything is and follows the site's
event log. With `--scenario crash` it also kills rec-2 the way a power cut would, waits for the
spare to take over, restarts rec-2 and lets handback and re-insert run, so a newcomer sees the whole
cycle without typing anything.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hotspare.api.tokens import hash_token, new_token
from hotspare.camerasim.launcher import CameraSim
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.etcd_process import EtcdCluster
from hotspare.demo.site_files import ServerPlan, SitePlan, SparePlan, write_site
from hotspare.node.process import NodeProcess
from hotspare.pki.store import SitePki
from hotspare.signing_keys import TRUST_ROOTS_FILE, install_trust_roots, read_trust_roots
from hotspare.site.load import load_site_config
from hotspare.site_secret import SITE_SECRET_FILE, read_site_secret
from hotspare.sitestate import applied, layout
from hotspare.sitestate.events import read_events
from hotspare.sitestate.values import Alive

SITE_ID = "demo"
RECORDING = {"segment_seconds": 2.0}
"""The demo servers' [recording] (short segments, so the timeline fills quickly)."""
MEMBERSHIP = {"lease_ttl_seconds": 3.0}
"""The demo nodes' [site] timings (the rest default); tests/unit/test_config.py validates them."""


@dataclass(frozen=True)
class DemoOptions:
    base_dir: Path
    cameras_per_server: int = 3
    width: int = 640
    height: int = 360
    fps: int = 25
    scenario: str = "none"  # "none" | "crash"
    duration: float = 0.0  # seconds; 0 = until Ctrl-C
    crash_after: float = 20.0
    down_for: float = 20.0


def hotspare_command() -> str:
    """How to run `hotspare` from where the demo runs (the venv's script, else `python -m`)."""
    name = "hotspare.exe" if sys.platform == "win32" else "hotspare"
    script = Path(sys.executable).with_name(name)
    return shown(script) if script.exists() else f"{sys.executable} -m hotspare"


def shown(path: Path) -> str:
    """A path as an operator types it: relative to the current folder when inside it, so the
    printed commands read like the README's (`.venv/bin/hotspare`, `var/demo/token`)."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class DemoSite:
    """Owns every process of the demo; `close` stops them all, whatever happened before."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.base = options.base_dir
        self.etcd: EtcdCluster | None = None
        self.sim: CameraSim | None = None
        self.coord: Coordinator | None = None
        self.nodes: dict[str, NodeProcess] = {}
        self.servers = ["rec-1", "rec-2"]
        self.spares = ["spare-1"]
        self.token = ""
        self._stop = threading.Event()

    def say(self, text: str) -> None:
        print(f"[demo] {text}", flush=True)

    def start(self) -> None:
        if self.base.exists():
            shutil.rmtree(self.base)  # each demo starts from an empty site
        self.base.mkdir(parents=True)
        self.token = secrets.token_urlsafe(24)
        token_file = self.base / "token"
        token_file.write_text(self.token + "\n", encoding="utf-8")
        users = self._write_user_tokens()

        pki = SitePki.init(self.base / "pki", "hotspare demo site CA")
        self.say("starting etcd (one member on loopback) with TLS and client-certificate auth: "
                 f"only holders of a certificate from the demo's site CA ({shown(pki.ca_file)}) "
                 "can read or write it")
        self.etcd = EtcdCluster(self.base / "etcd", 1, pki=pki)
        self.etcd.start()
        n = self.options.cameras_per_server
        camera_ids = {s: [f"{s}-cam-{i}" for i in range(1, n + 1)] for s in self.servers}
        all_ids = [c for ids in camera_ids.values() for c in ids]
        self.say(
            f"starting {len(all_ids)} simulated RTSP cameras "
            f"({self.options.width}x{self.options.height}, {self.options.fps} fps)"
        )
        self.sim = CameraSim(
            self.base / "camsim",
            cameras=all_ids,
            width=self.options.width,
            height=self.options.height,
            fps=self.options.fps,
            gop="1s",
        )
        self.sim.start()

        plan = SitePlan(
            site_id=SITE_ID,
            etcd_endpoints=self.etcd.endpoints,
            token=self.token,
            servers=[
                ServerPlan(
                    name,
                    {c: self.sim.rtsp_url(c) for c in camera_ids[name]},
                    role="master" if name == "rec-1" else "recording",
                    # rec-2 (the one the crash scenario kills) shows gapless takeover: the spare
                    # pre-buffers its cameras, so its takeover loses no frame.
                    extra={"protection": "gapless"} if name == "rec-2" else {},
                )
                for name in self.servers
            ],
            spares=[SparePlan(name) for name in self.spares],
            camera_licences=16,
            recording=dict(RECORDING),
            membership=dict(MEMBERSHIP),
            users=users,
            etcd_pki=pki,
        )
        files = write_site(self.base, plan)
        self.say(f"applying the site configuration {files.site_toml}")
        self.coord = Coordinator(self.etcd.endpoints, layout.site_prefix(SITE_ID), timeout=2.0,
                                 tls=self.etcd.client_tls)
        # What `hotspare site apply` stores, called directly: the demo is not a command line, and
        # the command's own checks (held licences, --strict) have nothing to check on a new site.
        # The licence key the demo made is trusted as an installation's file says, as the
        # nodes and `site apply` do (never from the site document).
        install_trust_roots(read_trust_roots(files.site_toml.parent / TRUST_ROOTS_FILE))
        revision, licences = applied.apply(
            self.coord, load_site_config(files.site_toml),
            read_site_secret(files.site_toml.parent / SITE_SECRET_FILE))
        if licences.refused:
            raise RuntimeError("the demo site's licences were refused: "
                               + "; ".join(str(r) for r in licences.refused))
        self.say(f"applied site {SITE_ID!r} at etcd revision {revision} "
                 f"({len(licences.licences)} licence(s))")

        for name in [*self.servers, *self.spares]:
            config = files.node_tomls[name]
            node = NodeProcess(
                name=name,
                config_path=config,
                data_dir=config.parent / "data",
                token=self.token,
                log_path=config.parent / "node.log",
            )
            self.nodes[name] = node
            node.start(timeout=60.0)
            pid = node.process.pid if node.process else "?"
            self.say(f"{name} is up at {node.url} (pid {pid}, log {node.log_path})")
            if name in self.servers:
                self._wait(f"{name} to record every camera", lambda n=name: self._alive(n), 60.0)
        self._print_guide(files.node_tomls, token_file)

    def _write_user_tokens(self) -> list[dict[str, str]]:
        """A viewer and an admin, so the UI can be tried with a read-only login; the node
        files get only the hashes, as `hotspare user new-token` would print them."""
        users = []
        for role in ("viewer", "admin"):
            token = new_token(role)
            (self.base / f"{role}.token").write_text(token + "\n", encoding="utf-8")
            users.append({"name": role, "role": role, "token_hash": hash_token(token)})
        return users

    def _alive(self, server: str) -> bool:
        assert self.coord is not None
        kv = self.coord.get(layout.alive(server))
        return kv is not None and Alive.parse(kv).confirmed

    def _wait(self, what: str, check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if check():
                return True
            time.sleep(0.25)
        self.say(f"still waiting for {what} after {timeout:.0f} s; see the node logs")
        return False

    def _print_guide(self, node_tomls: dict[str, Path], token_file: Path) -> None:
        hs = hotspare_command()
        rec2 = self.nodes["rec-2"]
        master = self.nodes["rec-1"].url
        token = shown(token_file)
        lines = [
            "",
            "The demo site is running:",
            *(f"  {name:<8} {node.url}/api/v1/health" for name, node in self.nodes.items()),
            f"  node credential: {token}   (send it as 'Authorization: Bearer <token>';",
            "  all rights, shared by the nodes; people and scripts should use a user token)",
            "",
            f"Web UI (served by the master, rec-1): {self.nodes['rec-1'].url}/ui/",
            f"  log in read-only with the viewer token in {shown(self.base / 'viewer.token')},",
            f"  or with the admin token in {shown(self.base / 'admin.token')}",
            "",
            "Try, in another terminal (the README lists the same commands):",
            f"  {hs} status --node {master} --token-file {token}",
            f"  {hs} events --node {master} --token-file {token} --follow",
            f"  {hs} protection --config {shown(node_tomls['rec-1'])}",
            f"  {hs} timeline rec-2-cam-1 --site --node {master} --token-file {token} --from -5m",
            "(--site: the master merges the site's timeline, whoever holds the video; without it",
            " --node must be the camera's own server, else the answer is unknown_camera)",
            "",
            "Crash rec-2 like a power cut, watch spare-1 take over, then bring rec-2 back:",
            f"  kill -9 {rec2.process.pid if rec2.process else '<pid>'}",
            f"  {hs} node --config {shown(node_tomls['rec-2'])}",
            "(in a terminal of its own: it runs until Ctrl-C there, which the demo's Ctrl-C does",
            " not reach; or run the demo with --scenario crash to have it all done for you)",
            "",
            "Ctrl-C stops the whole site. Site events follow:",
        ]
        print("\n".join(lines), flush=True)

    def follow_events(self) -> None:
        """Print new site events until stopped; a passing etcd hiccup only delays them."""
        seen: set[tuple[int, str, str]] = set()
        while not self._stop.is_set():
            try:
                assert self.coord is not None
                events, _revision = read_events(self.coord)
            except Exception:
                events = []
            for event in events:
                key = (event.wall_us, event.node, event.kind)
                if key not in seen:
                    seen.add(key)
                    print(f"  event  {event.line()}", flush=True)
            self._stop.wait(0.5)

    def run_crash_scenario(self) -> None:
        opts = self.options
        if self._stop.wait(opts.crash_after):
            return
        victim = self.nodes["rec-2"]
        self.say("SIGKILL rec-2 (a power cut): spare-1 should claim it within about a second")
        victim.kill()
        crashed = time.monotonic()
        if self._wait("spare-1 to claim rec-2", lambda: self._claimed("rec-2"), 30.0):
            self.say(f"rec-2 claimed {time.monotonic() - crashed:.2f} s after the crash")
        if self._stop.wait(opts.down_for):
            return
        self.say("restarting rec-2: it records at once, then spare-1 hands back and re-inserts")
        victim.start(timeout=60.0)
        if self._wait(
            "handback and re-insert to finish", lambda: not self._claimed("rec-2"), 180.0
        ):
            self.say("rec-2 has its own video back, including what spare-1 recorded meanwhile:")
            self.say(
                f"  {hotspare_command()} timeline rec-2-cam-1 --site --node "
                f"{self.nodes['rec-1'].url} --token-file {shown(self.base / 'token')} --from -5m"
            )
            self.say("the crash scenario is over; the site runs on until Ctrl-C")

    def _claimed(self, server: str) -> bool:
        assert self.coord is not None
        return self.coord.get(layout.claim(server)) is not None

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        for node in reversed(list(self.nodes.values())):
            node.stop(timeout=15.0)
        if self.coord is not None:
            self.coord.close()
        if self.sim is not None:
            self.sim.stop()
        if self.etcd is not None:
            self.etcd.stop()


def run_demo(options: DemoOptions) -> int:
    site = DemoSite(options)
    previous = signal.signal(signal.SIGTERM, lambda *_: site.stop())
    try:
        site.start()
        if options.scenario == "crash":
            threading.Thread(target=site.run_crash_scenario, name="scenario", daemon=True).start()
        follower = threading.Thread(target=site.follow_events, name="events", daemon=True)
        follower.start()
        deadline = time.monotonic() + options.duration if options.duration > 0 else None
        while not site._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            site._stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        site.say("stopping the site")
        site.close()
        signal.signal(signal.SIGTERM, previous)
    return 0
