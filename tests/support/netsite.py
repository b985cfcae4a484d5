"""A failover site laid out over test hosts (network namespaces): etcd, the camera simulator and
every node on a host of its own, each node's site address being its host's address.

    with NetSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"]) as site:
        site.start_all()
        site.host("rec-1").link_down()      # rec-1 vanishes from the network, process alive
        site.wait_event("claimed", "rec-1")

It is tests.support.site.FailoverSite (same site files, same `site apply`, same node launcher,
same event and frame helpers) with only the placement changed, so a test written for one reads
the same for the other. On a single loopback a vanished host cannot be shown: a dead process
answers "refused" at once, a cut cable answers nothing, and the product treats the two
differently (docs/failover.md, "Detection").

The test process itself sits on a host of its own, `test` (its main thread is moved into that
namespace for the life of the site, tests/support/netns.py `Host.entered`), so its etcd reads,
API calls and camera-control calls cross the same bridge as the nodes' traffic, and nothing of
the test network is reachable from, or routed through, the machine's own namespace.
"""

from __future__ import annotations

import contextlib
import shutil
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.etcd_process import EtcdCluster, EtcdMemberSpec, EtcdProcess
from hotspare.sitestate import layout
from tests.support.camsim import CameraSim
from tests.support.etcd import require_etcd_binary, session_pki
from tests.support.netns import Host, TestNet, require_netns
from tests.support.site import FailoverSite

__all__ = ["CAMERAS", "OBSERVER", "HostEtcdCluster", "NetSite"]

OBSERVER = "test"
"""The host the test process works from."""
CAMERAS = "cams"
"""The host of the camera simulator."""
ETCD_CLIENT_PORT = 2379  # every member has a host of its own, so the standard ports are free
ETCD_PEER_PORT = 2380


class HostEtcdCluster(EtcdCluster):
    """EtcdCluster with each member on its own host, listening on that host's address.

    Members are started from inside their hosts (the child inherits the namespace), so a test
    can later cut one member's link, or restart it with `restart_member`, like a real machine."""

    def __init__(self, base_dir: Path, hosts: list[Host], *, binary: Path,
                 heartbeat_interval_ms: int = 100, election_timeout_ms: int = 1000) -> None:
        super().__init__(base_dir, len(hosts), binary=binary, host=hosts[0].address,
                         heartbeat_interval_ms=heartbeat_interval_ms,
                         election_timeout_ms=election_timeout_ms, pki=session_pki())
        self.member_hosts = list(hosts)
        self._binary_path = binary
        self._heartbeat_ms = heartbeat_interval_ms
        self._election_ms = election_timeout_ms

    def _build(self) -> None:
        specs = [EtcdMemberSpec(f"etcd{i}", ETCD_CLIENT_PORT, ETCD_PEER_PORT, host.address,
                                tls=True)
                 for i, host in enumerate(self.member_hosts)]
        token = f"hotspare-net-{self.member_hosts[0].net.prefix}"
        self.members = [
            EtcdProcess(spec, self.base_dir / spec.name, specs, binary=self._binary_path,
                        cluster_token=token, log_path=self.base_dir / f"{spec.name}.log",
                        heartbeat_interval_ms=self._heartbeat_ms,
                        election_timeout_ms=self._election_ms, tls=self.member_tls(spec))
            for spec in specs
        ]

    def start(self, timeout: float = 30.0, attempts: int = 1) -> None:
        """No port race to retry here: each member owns its host's ports."""
        del attempts
        self._build()
        for member in self.members:
            if member.data_dir.exists():
                shutil.rmtree(member.data_dir)
        try:
            for member, host in zip(self.members, self.member_hosts, strict=True):
                with host.entered():
                    member.start(wait=False)
            for member in self.members:
                member.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def restart_member(self, index: int, timeout: float = 20.0) -> None:
        member, host = self.members[index], self.member_hosts[index]
        member.stop()
        with host.entered():
            member.start(wait=False)
        member.wait_healthy(timeout)


class NetSite(FailoverSite):
    """FailoverSite with one host per process: `test`, `etcd` (or `etcd1`..`etcdN`), `cams`, and
    one per node, named like the node."""

    def __init__(self, tmp: Path, servers: dict[str, int], spares: list[str],
                 camera_transport: str = "tcp", **options: Any) -> None:
        """`camera_transport`: how every camera is recorded (`tcp` or `udp`). A test that cuts a
        recording server's link wants `udp`: the simulator serves one shared stream per camera,
        and a TCP session to a vanished host stalls that stream for every client (the spare got
        no frames for 30 s and more), which a real camera with one session per client does not."""
        super().__init__(tmp, servers, spares, **options)
        self.camera_transport = camera_transport
        etcd_hosts = (["etcd"] if self.etcd_size == 1
                      else [f"etcd{i + 1}" for i in range(self.etcd_size)])
        self.etcd_hosts = etcd_hosts
        self.net = TestNet([OBSERVER, *etcd_hosts, CAMERAS, *servers, *spares])
        self._observer: contextlib.ExitStack | None = None

    def host(self, name: str) -> Host:
        """The host of a node (by node name), or `etcd`/`etcdN`, `cams`, `test`."""
        return self.net.host(name)

    def api_url(self, name: str) -> str:
        return f"http://{self.net.host(name).address}:{self.nodes[name].port}"

    # ------------------------------------------------------------------ set-up

    def __enter__(self) -> NetSite:
        require_netns()
        binary = require_etcd_binary()
        try:
            self.net.start()
            self._observer = contextlib.ExitStack()
            self._observer.enter_context(self.net.host(OBSERVER).entered())
            self.etcd = HostEtcdCluster(self.tmp / "etcd",
                                        [self.net.host(h) for h in self.etcd_hosts],
                                        binary=binary)
            self.etcd.start()
            cams = self.net.host(CAMERAS)
            all_cameras = list(dict.fromkeys(self.sim_camera(c)
                                             for cams_ in self.cameras.values() for c in cams_))
            with cams.entered():
                self.sim = CameraSim(self.tmp / "camsim", cameras=all_cameras, width=320,
                                     height=240, fps=self.fps, gop="1s", bitrate_kbps=300,
                                     extra_args=["--bind", cams.address]).start()
            self.coord = Coordinator(self.etcd.endpoints, layout.site_prefix(self.site_id),
                                     timeout=1.0, deadline=5.0, tls=self.etcd.client_tls)
            self._write_site()
            self.apply_site()
        except BaseException:
            self.close()
            raise
        return self

    def _write_site(self) -> None:
        """The shared writer lays the site out on one host; each node is then moved to its own
        address, in site.toml (where spares probe it) and in its node.toml (where it binds)."""
        super()._write_site()
        for section in ("recording_servers", "failover_servers"):
            for entry in self.site_doc.get(section, []):
                port = self.nodes[entry["name"]].port
                entry["address"] = f"{self.net.host(entry['name']).address}:{port}"
                for camera in entry.get("cameras", []):
                    camera["transport"] = self.camera_transport
        (self.tmp / "site.toml").write_bytes(tomli_w.dumps(self.site_doc).encode())
        for name, node in self.nodes.items():
            path = node.process.config_path
            document = tomllib.loads(path.read_text(encoding="utf-8"))
            document["api"]["host"] = self.net.host(name).address
            path.write_bytes(tomli_w.dumps(document).encode())

    def close(self) -> None:
        """Stop every process, leave the observer host, then remove the hosts; in that order so
        that nothing is left holding a namespace or an address of the test network."""
        try:
            super().close()
        finally:
            self.coord = None  # its sessions belong to the observer host, gone below
            if self._observer is not None:
                self._observer.close()
                self._observer = None
            self.net.close()

    # ------------------------------------------------------------------ running

    def start(self, name: str) -> None:
        """Start a node on its own host (the child inherits the namespace of this thread)."""
        with self.net.host(name).entered():
            super().start(name)
