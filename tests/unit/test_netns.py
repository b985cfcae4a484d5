"""The network-namespace harness (tests/support/netns.py): hosts talk, cuts are silent, nothing
stays behind. Needs root and `ip`: skipped without them, failed under CI."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.netns import FAMILY, TestNet, remove_leftovers, require_netns


@pytest.fixture
def net() -> Iterator[TestNet]:
    require_netns()
    with TestNet(["a", "b", "c"]) as made:
        yield made


@contextlib.contextmanager
def listener(net: TestNet, host: str) -> Iterator[tuple[socket.socket, int]]:
    with net.host(host).entered():
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind((net.host(host).address, 0))
        server.listen(8)
        yield server, int(server.getsockname()[1])
    finally:
        server.close()


def connect(net: TestNet, src: str, dst: str, port: int, timeout: float = 0.6) -> str:
    """'ok', 'timeout', or the OS error's name: what a client on `src` sees."""
    with net.host(src).entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((net.host(dst).address, port))
        return "ok"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__
    finally:
        sock.close()


def root_namespace_addresses() -> str:
    return subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout


def test_hosts_talk_over_the_bridge_and_run_processes(net: TestNet) -> None:
    with listener(net, "b") as (_server, port):
        assert connect(net, "a", "b", port) == "ok"
        assert connect(net, "c", "b", port) == "ok"
    shown = net.host("a").run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"]).stdout
    assert net.host("a").address in shown
    proc = net.host("c").popen(["sleep", "30"])
    try:
        # `ip netns exec` enters the namespace after it starts: wait for it to be there.
        deadline = time.monotonic() + 5.0
        while proc.pid not in net.host("c").pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.pid in net.host("c").pids()
    finally:
        proc.kill()
        proc.wait(5)
    # The addresses exist only inside the harness's namespaces.
    assert str(net.subnet.network_address)[:-1] not in root_namespace_addresses()


def test_a_cut_link_is_silence_and_comes_back(net: TestNet) -> None:
    with listener(net, "b") as (_server, port):
        assert connect(net, "a", "b", port) == "ok"
        net.host("b").link_down()
        started = time.monotonic()
        assert connect(net, "a", "b", port) == "timeout"  # no RST, no ICMP: nothing at all
        assert time.monotonic() - started >= 0.5
        assert connect(net, "a", "c", 9) == "ConnectionRefusedError"  # others unaffected
        net.host("b").link_up()
        assert connect(net, "a", "b", port, timeout=3.0) == "ok"


def test_partition_cuts_one_pair_only(net: TestNet) -> None:
    with listener(net, "b") as (_server, port):
        net.partition("a", "b")
        assert connect(net, "a", "b", port) == "timeout"
        assert connect(net, "c", "b", port) == "ok"
        net.heal("a", "b")
        assert connect(net, "a", "b", port, timeout=3.0) == "ok"
    assert not net.partitions()


def test_everything_is_removed_also_leftovers_of_dead_runs() -> None:
    require_netns()
    with TestNet(["x"]) as net:
        inside = net.host("x").popen(["sleep", "30"])
        names = {net.switch, net.host("x").namespace}
    assert inside.wait(5) is not None  # killed by close(): it held the namespace
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)
    # A namespace of a run whose process is gone is removed by the next run.
    dead = 4_000_000 + os.getpid() % 100_000  # above pid_max's default: surely not running
    leftover = f"{FAMILY}{dead}x1-stale"
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    try:
        assert leftover in remove_leftovers()
    finally:
        subprocess.run(["ip", "netns", "delete", leftover], capture_output=True)
