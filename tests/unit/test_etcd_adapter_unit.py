"""Adapter edge cases that need no etcd: key ranges, endpoints, operator-facing messages."""

from __future__ import annotations

import time

import pytest

from hotspare.coordination.errors import EtcdUnavailableError, FencingError
from hotspare.coordination.etcd_adapter import (
    Coordinator,
    _range_end,
    first_member,
    normalize_endpoint,
)
from hotspare.coordination.etcd_process import EtcdBinaryNotFound, find_etcd_binary, pick_free_ports


def test_range_end() -> None:
    assert _range_end(b"/hotspare/a/") == b"/hotspare/a0"
    assert _range_end(b"a\xff") == b"b"
    assert _range_end(b"\xff\xff") == b"\0"


def test_normalize_endpoint() -> None:
    assert normalize_endpoint("http://127.0.0.1:2379/") == "127.0.0.1:2379"
    assert normalize_endpoint("10.0.0.5") == "10.0.0.5:2379"
    assert normalize_endpoint("[::1]:22379") == "[::1]:22379"


def test_prefix_and_keys_are_validated() -> None:
    with pytest.raises(ValueError):
        Coordinator(["127.0.0.1:1"], "hotspare/site")
    with pytest.raises(ValueError):
        Coordinator([], "/hotspare/site/")
    coord = Coordinator(["127.0.0.1:1"], "/hotspare/site/")
    with pytest.raises(ValueError):
        coord.put("/absolute", "x")


def test_unreachable_message_names_endpoints_duration_and_cause() -> None:
    a, b = pick_free_ports(2)  # nothing listens there
    coord = Coordinator([f"127.0.0.1:{a}", f"127.0.0.1:{b}"], "/hotspare/s/",
                        timeout=0.2, deadline=1.0)
    start = time.monotonic()
    with pytest.raises(EtcdUnavailableError) as info:
        coord.get("config")
    elapsed = time.monotonic() - start
    assert elapsed < 2.0
    text = str(info.value)
    assert f"127.0.0.1:{a}, 127.0.0.1:{b}" in text
    assert "last error:" in text and "check that the etcd members are running" in text
    assert "read /hotspare/s/config" in text


def test_fencing_error_message() -> None:
    assert "stale" in str(FencingError("claims/rs1", 12, 40))
    assert "is gone" in str(FencingError("claims/rs1", 12, None))


def test_missing_binary_names_package(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("HOTSPARE_ETCD_BINARY", "/nonexistent/etcd")
    with pytest.raises(EtcdBinaryNotFound) as info:
        find_etcd_binary()
    assert "apt-get install etcd-server" in str(info.value)
    assert "HOTSPARE_ETCD_BINARY" in str(info.value)


def _kv_json(key: bytes, value: bytes, create: int, lease: int) -> dict[str, object]:
    import base64

    return {"key": base64.b64encode(key).decode(), "value": base64.b64encode(value).decode(),
            "create_revision": str(create), "mod_revision": str(create), "version": "1",
            "lease": str(lease)}


def test_claim_whose_answer_was_lost_is_recognised_on_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timeout after etcd applied our create: the retry fails the compare but finds our value."""
    from hotspare.coordination import etcd_adapter

    coord = Coordinator(["127.0.0.1:1"], "/hotspare/s/", timeout=0.2, deadline=2.0)
    calls: list[str] = []

    def fake_post(self: Coordinator, endpoint: str, path: str, payload: dict[str, object],
                  timeout: float, operation: str) -> dict[str, object]:
        calls.append(path)
        if len(calls) == 1:
            raise etcd_adapter._Retryable(endpoint, "read timed out")
        return {"header": {"revision": "9"}, "responses": [{"response_range": {"kvs": [
            _kv_json(b"/hotspare/s/claims/rs1", b"spare-a", 7, 42)]}}]}  # no "succeeded"

    monkeypatch.setattr(Coordinator, "_post_once", fake_post)
    result = coord.create_if_absent("claims/rs1", "spare-a", lease=42)
    assert result.created and result.token == 7 and len(calls) == 2
    # someone else's value: a lost race, not ours
    calls.clear()
    other = coord.create_if_absent("claims/rs1", "spare-b", lease=43)
    assert not other.created and other.token == 7


def test_for_site_builds_the_prefix() -> None:
    assert Coordinator.for_site(["127.0.0.1:1"], "plant-7").prefix == "/hotspare/plant-7/"
    with pytest.raises(ValueError):
        Coordinator.for_site(["127.0.0.1:1"], "a/b")


def test_a_keepalive_stream_error_is_no_answer_not_an_expired_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway answers a failed keepalive stream with HTTP 200 and the error as its body (a
    leader thawed after a freeze, stepping down, answered so). Taken for "no TTL", it cost a node
    its lease; it must count as no answer from that member."""
    from etcd3gw.client import Etcd3Client

    def stream_error(self: Etcd3Client, url: str, **kwargs: object) -> dict[str, object]:
        return {"error": {"grpc_code": 14, "http_code": 503,
                          "message": "etcdserver: leader changed", "http_status": "Unavailable"}}

    monkeypatch.setattr(Etcd3Client, "post", stream_error)
    coord = Coordinator(["127.0.0.1:1", "127.0.0.1:2"], "/hotspare/s/", timeout=0.2, deadline=0.5)
    with pytest.raises(EtcdUnavailableError) as info:
        coord.keepalive_once(42, timeout=0.2)
    assert "leader changed" in str(info.value)
    assert coord.endpoints_by_preference()[0] == "127.0.0.1:2"  # the member was demoted


def test_nodes_spread_over_the_members_each_keeping_its_own() -> None:
    """Every node lists the members in the same order; were the first one everyone's
    preference, it would serve ~94 % of a site's requests and watches (bench/site_scale)."""
    members = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
    firsts = [Coordinator(members, "/hotspare/s/", spread_by=f"rs{i:03d}")
              .endpoints_by_preference()[0] for i in range(300)]
    counts = {member: firsts.count(member) for member in members}
    assert all(70 <= n <= 130 for n in counts.values()), counts
    again = Coordinator(members, "/hotspare/s/", spread_by="rs007").endpoints_by_preference()
    assert again[0] == firsts[7]  # stable across restarts: not Python's salted hash
    assert Coordinator(members, "/hotspare/s/").endpoints_by_preference() == members


def test_a_node_whose_member_is_down_fails_over_to_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from etcd3gw.client import Etcd3Client
    from etcd3gw.exceptions import ConnectionFailedError

    members = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
    name = next(f"rs{i}" for i in range(100) if first_member(f"rs{i}", 3) == 1)
    asked: list[str] = []

    def answer(self: Etcd3Client, url: str, **kwargs: object) -> dict[str, object]:
        asked.append(f"{self.host}:{self.port}")
        if self.port == 2:
            raise ConnectionFailedError("connection refused")
        return {"header": {"revision": "7"}}

    monkeypatch.setattr(Etcd3Client, "post", answer)
    coord = Coordinator(members, "/hotspare/s/", timeout=0.2, deadline=2.0, spread_by=name)
    assert coord.put("k", "v") == 7
    assert asked == ["127.0.0.1:2", "127.0.0.1:3"]  # its own member first, then the next
    assert coord.endpoints_by_preference()[0] == "127.0.0.1:3"
