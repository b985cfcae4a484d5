"""Hosts as Linux network namespaces on one private bridge, for tests and benchmarks.

    with TestNet(["etcd", "rec-1", "spare-1"]) as net:
        rec = net.host("rec-1")
        proc = rec.popen(["python", "-m", "http.server", "--bind", rec.address, "8000"])
        with net.host("spare-1").entered():      # sockets made here belong to spare-1
            ...
        rec.link_down()                           # rec-1 vanishes: no FIN, no RST, nothing
        net.partition("rec-1", "spare-1")         # only these two stop hearing each other

Loopback alone cannot show what a vanished host looks like to its peers: a killed process on
127.0.0.1 answers with a refused connection at once, while a host whose cable is cut answers
nothing. Namespaces give each "host" its own stack and address, so a cut link is silence.

Layout (docs/test-hosts.md): one namespace per host and one more, the switch, holding the bridge.
Each host has `eth0` (a veth whose other end is a port of the bridge) with an address in a
documentation range (RFC 5737: 198.51.100.0/24, else 203.0.113.0/24, the first one the machine
itself does not use; some VMs number their own uplink in 192.0.2.0/24) and its own loopback.
The bridge lives in a namespace of its own rather than in the root namespace so that
nothing of the test network (bridge, ports, address, route) exists where the machine's real
interfaces are: no packet can leave the test network, and deleting the namespaces removes all of it.

Every namespace is named `hsnet<pid>x<n>-<host>`: unique per run, and a later run can tell a
leftover of a dead run (its pid is gone) and remove it. `close()` (also on failure and on
KeyboardInterrupt, through `with`) kills what still runs inside and deletes the namespaces.

Needs root and iproute2's `ip`; without them `require_netns()` skips the test (fails under CI,
tests.support.prerequisites).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from tests.support.prerequisites import missing_prerequisite
from tests.support.processes import pid_alive

__all__ = [
    "FAMILY",
    "Host",
    "NetError",
    "TestNet",
    "netns_problem",
    "remove_leftovers",
    "require_netns",
]

FAMILY = "hsnet"
"""Every namespace the harness makes starts with this; then the owner's pid, `x`, a counter."""

SUBNETS = (ipaddress.IPv4Network("198.51.100.0/24"), ipaddress.IPv4Network("203.0.113.0/24"))
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/run/netns"
_BOGUS_MAC = "02:00:00:00:00:01"  # locally administered; no port of the bridge has it
_IP_TIMEOUT = 10.0
_counter = itertools.count(1)


class NetError(RuntimeError):
    """An `ip` command of the harness failed; the message quotes its stderr."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT)
    if check and result.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def netns_problem() -> str | None:
    """Why this machine cannot make test hosts (None: it can). Checked, not assumed: a container
    may run as root yet lack CAP_SYS_ADMIN, so the check makes and removes a namespace."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces (tests/support/netns.py) need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's `ip` (apt-get install iproute2)"
    name = f"{FAMILY}{os.getpid()}xprobe"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _ip("netns", "delete", name, check=False)
    return None


_PROBLEM: list[str | None] = []


def require_netns() -> None:
    """Skip the calling test (fail it under CI) where namespaces cannot be made; probed once."""
    if not _PROBLEM:
        _PROBLEM.append(netns_problem())
    if _PROBLEM[0] is not None:
        missing_prerequisite(_PROBLEM[0])


def _owner_pid(namespace: str) -> int | None:
    """The pid in `hsnet<pid>x...`, None for a name the harness did not make."""
    if not namespace.startswith(FAMILY):
        return None
    digits = namespace[len(FAMILY):].split("x", 1)[0]
    return int(digits) if digits.isdigit() else None


def _namespaces() -> list[str]:
    listed = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def _kill_inside(namespace: str) -> None:
    """SIGKILL what still runs in a namespace of ours: a namespace outlives its deletion while a
    process holds it, and so would that process's sockets on the test network."""
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        if pid.isdigit() and int(pid) != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _delete(namespace: str) -> None:
    _kill_inside(namespace)
    _ip("netns", "delete", namespace, check=False)


def remove_leftovers(prefix: str | None = None) -> list[str]:
    """Delete namespaces of runs that died without cleaning up (their pid is gone), and, given a
    prefix, every namespace under it. Returns what was deleted. Another live run's namespaces are
    left alone, so parallel runs do not break each other."""
    removed = []
    for name in _namespaces():
        owner = _owner_pid(name)
        if owner is None:
            continue
        if (prefix is not None and name.startswith(prefix + "-")) or not pid_alive(owner):
            _delete(name)
            removed.append(name)
    return removed


def pick_subnet() -> ipaddress.IPv4Network:
    """The first documentation /24 that no address or route of the root namespace overlaps, so a
    test address can never mean a machine on the real network."""
    used: list[ipaddress.IPv4Network] = []
    for line in _ip("-o", "-4", "addr", check=False).stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network)
    for line in _ip("-4", "route", check=False).stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            if first != "default":
                used.append(ipaddress.IPv4Network(first, strict=False))
    for subnet in SUBNETS:
        if not any(subnet.overlaps(u) for u in used):
            return subnet
    raise NetError(f"every candidate test subnet {SUBNETS} is in use on this machine")


_libc: Any = None


def _setns(fd: int) -> None:
    """Move the calling thread (only it) into the network namespace behind `fd`. Python 3.11 has
    no os.setns, hence libc."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Host:
    """One test host: a namespace with `eth0` on the bridge and one address."""

    def __init__(self, net: TestNet, name: str, index: int, address: str) -> None:
        self.net = net
        self.name = name
        self.index = index
        self.address = address
        self.namespace = f"{net.prefix}-{name}"
        self.port = f"p{index}"  # its end on the bridge, inside the switch namespace
        self.link_is_up = True

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address}, ns={self.namespace})"

    def argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def run(self, argv: Sequence[str], *, timeout: float = 30.0, check: bool = True,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run to completion inside the host; output captured as text unless told otherwise."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.argv(argv), timeout=timeout, check=check, **kwargs)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start inside the host. `ip netns exec` execs the command, so the pid is the
        command's own (signals such as SIGKILL/SIGSTOP reach it directly)."""
        return subprocess.Popen(self.argv(argv), **kwargs)

    @contextlib.contextmanager
    def entered(self) -> Iterator[Host]:
        """The calling thread works inside this host until the block ends: sockets it opens and
        processes it starts (they inherit the thread's namespace) belong here. This is how the
        product's own launchers (NodeProcess, EtcdCluster, CameraSim), which call Popen and poll
        the child over HTTP, run on a host unchanged. Other threads are not affected; threads
        started inside the block inherit the host, and sockets keep the namespace they were
        made in."""
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"{_NETNS_DIR}/{self.namespace}", os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield self
            finally:
                _setns(back)
        finally:
            os.close(back)

    def link_down(self) -> None:
        """The host vanishes from the network: its bridge port is detached, so its frames go
        nowhere and nobody's reach it. Nothing is sent (no FIN, no RST, no ICMP), and the host
        keeps its carrier, so its processes see silence too, as behind a failed switch port."""
        _ip("-n", self.net.switch, "link", "set", "dev", self.port, "nomaster")
        self.link_is_up = False

    def link_up(self) -> None:
        """Reattach the port; the bridge forwards at once (no STP)."""
        _ip("-n", self.net.switch, "link", "set", "dev", self.port, "master",
            self.net.bridge, "up")
        self.link_is_up = True

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.namespace, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]


class TestNet:
    """The switch namespace with its bridge, and one namespace per host; a context manager that
    always removes all of it."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, hosts: Sequence[str], *, prefix: str | None = None) -> None:
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"host names must be unique: {hosts}")
        if len(hosts) > 200:
            raise ValueError("at most 200 hosts")
        self.prefix = prefix or f"{FAMILY}{os.getpid()}x{next(_counter)}"
        self.switch = f"{self.prefix}-switch"
        self.bridge = "br0"  # inside the switch namespace: no name clash with anything
        self.subnet = pick_subnet()
        addresses = list(self.subnet.hosts())
        self.hosts = {name: Host(self, name, i + 1, str(addresses[i + 9]))
                      for i, name in enumerate(hosts)}
        self._partitions: set[frozenset[str]] = set()
        self._made: list[str] = []

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    # ------------------------------------------------------------------ life cycle

    def start(self) -> TestNet:
        remove_leftovers(self.prefix)
        try:
            self._add_namespace(self.switch)
            _ip("-n", self.switch, "link", "add", self.bridge, "type", "bridge", "stp_state", "0")
            _ip("-n", self.switch, "link", "set", self.bridge, "up")
            for host in self.hosts.values():
                self._add_host(host)
        except BaseException:
            self.close()
            raise
        return self

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)

    def _add_host(self, host: Host) -> None:
        ns = host.namespace
        self._add_namespace(ns)
        # Both ends are made directly in their namespaces: nothing ever appears in the root one.
        _ip("link", "add", "eth0", "netns", ns, "type", "veth",
            "peer", "name", host.port, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", host.port, "master", self.bridge, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")

    def close(self) -> None:
        """Kill what runs inside, delete every namespace (bridge, veths and addresses go with
        them). Safe to call twice and after a failed start."""
        for name in reversed(self._made):
            _delete(name)
        self._made.clear()
        deadline = time.monotonic() + 5.0
        while any(n.startswith(self.prefix + "-") for n in _namespaces()):
            if time.monotonic() > deadline:
                remove_leftovers(self.prefix)
                break
            time.sleep(0.05)

    def __enter__(self) -> TestNet:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ faults

    def partition(self, a: str, b: str) -> None:
        """`a` and `b` stop hearing each other; both still talk to everyone else.

        No iptables/nft/tc-drop on the test machines, so each side gets a permanent neighbour
        entry for the other pointing at a MAC no port has: frames are sent and silently lost at
        the bridge (flooded, dropped by every host's NIC), as in a real partition. Sockets
        see timeouts, never a refusal or a local error."""
        ha, hb = self.hosts[a], self.hosts[b]
        for here, there in ((ha, hb), (hb, ha)):
            _ip("-n", here.namespace, "neigh", "replace", there.address, "lladdr", _BOGUS_MAC,
                "nud", "permanent", "dev", "eth0")
        self._partitions.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        """Undo `partition(a, b)`: the neighbour entries go, the next packet asks ARP again."""
        ha, hb = self.hosts[a], self.hosts[b]
        for here, there in ((ha, hb), (hb, ha)):
            _ip("-n", here.namespace, "neigh", "del", there.address, "dev", "eth0", check=False)
        self._partitions.discard(frozenset((a, b)))

    def partitions(self) -> set[frozenset[str]]:
        return set(self._partitions)
