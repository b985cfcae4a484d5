"""Failover rules that need no etcd or processes: detection, rate limit, stored site config."""

from __future__ import annotations

import pytest

from hotspare.failover.detection import ServerTrack, judge
from hotspare.failover.probe import ProbeKind, ProbeResult
from hotspare.failover.reinsert import RateLimiter
from hotspare.site.model import SiteConfig
from hotspare.sitestate import applied as site_config
from hotspare.sitestate import layout

REC = ProbeResult(ProbeKind.RECORDING)
NOT_REC = ProbeResult(ProbeKind.NOT_RECORDING, "cam-1=connecting")
REFUSED = ProbeResult(ProbeKind.REFUSED, "refused")
TIMEOUT = ProbeResult(ProbeKind.TIMEOUT, "slow")


def test_recording_answer_vetoes_takeover_even_without_lease() -> None:
    track = ServerTrack()
    for now in range(10):
        verdict = judge(track, lease_present=False, probe=REC, now=float(now), grace=1.0)
        assert not verdict.failed and not verdict.suspect


def test_refused_twice_is_dead_even_with_lease() -> None:
    track = ServerTrack()
    assert not judge(track, True, REFUSED, 0.0, 5.0).failed
    verdict = judge(track, True, REFUSED, 0.2, 5.0)
    assert verdict.failed and "refused" in verdict.reason


def test_one_refusal_between_answers_is_not_enough() -> None:
    track = ServerTrack()
    judge(track, True, REFUSED, 0.0, 5.0)
    judge(track, True, REC, 0.2, 5.0)
    assert not judge(track, True, REFUSED, 0.4, 5.0).failed


def test_timeout_waits_for_the_lease() -> None:
    track = ServerTrack()
    for now in (0.0, 1.0, 5.0, 30.0):
        verdict = judge(track, True, TIMEOUT, now, 1.0)
        assert verdict.suspect and not verdict.failed
    assert judge(track, False, TIMEOUT, 31.0, 1.0).failed


def test_not_recording_needs_dropped_lease_and_grace() -> None:
    track = ServerTrack()
    assert not judge(track, True, NOT_REC, 0.0, 2.0).failed  # still holds its lease
    assert not judge(track, False, NOT_REC, 1.0, 2.0).failed  # within grace (booting)
    assert judge(track, False, NOT_REC, 2.5, 2.0).failed


def test_rate_limiter_sleeps_for_excess() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(1000, clock=lambda: now[0], sleep=sleep)
    assert limiter.take(1000) == 0.0  # one second of burst
    assert limiter.take(500) == pytest.approx(0.5)
    now[0] += 2.0
    assert limiter.take(800) == 0.0


def test_site_config_round_trip_keeps_secrets() -> None:
    site = SiteConfig.model_validate({
        "site": {"id": "s"},
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [{
            "name": "rec-1", "address": "127.0.0.1:8601", "role": "master",
            "cameras": [{"id": "cam-1", "url": "rtsp://h/c", "username": "u",
                         "password": "s3cret"}],
        }],
        "failover_servers": [{"name": "spare-1", "address": "127.0.0.1:8602"}],
        "licences": [{"text": "not a licence"}],
    })
    back = site_config.decode(site_config.encode(site))
    password = back.recording_servers[0].cameras[0].password
    assert password is not None and password.get_secret_value() == "s3cret"
    assert back == site


def test_key_layout() -> None:
    assert layout.site_prefix("harbour") == "/hotspare/harbour/"
    assert layout.claim("rec-1") == "claims/rec-1"
    assert layout.reinsert("rec-1", "spare-1") == "reinsert/rec-1/spare-1"
    assert layout.event(12, "n", "ab") < layout.event(100, "n", "ab")
