"""Slow and lossy links, made by a userspace relay (tests/support/relay.py; no netem here).

- between the spare and a recording server's API (the probe path), on the server's own host: every
  byte 150 ms late each way (300 ms a round trip), one new connection in ten stalled, and bursts
  of 0.7 s in which nothing passes. The server is slow, not dead, and answers through etcd: it is
  suspected at most, never claimed;
- between a camera and its recorder (RTSP over TCP): delay, stalls and connection resets. The
  recorder loses frames, says so (a gap in the timeline, a new run after each reconnect), stores
  none twice and records on; the node never stops.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.support.camsim import now_us
from tests.support.netsite import NetSite
from tests.support.relay import Relay
from tests.support.site import TOKEN, FailoverSite, camera_frames, wait_for

pytestmark = pytest.mark.slow


def test_a_slow_server_behind_a_lossy_probe_path_is_not_claimed(tmp_path: Path) -> None:
    with NetSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"]) as site:
        rec = site.host("rec-1")
        relay = Relay((rec.address, 0), (rec.address, site.nodes["rec-1"].port),
                      delay_s=0.15, stall_every=10)
        with rec.entered():
            relay.start()
        try:
            def through_relay(doc: dict[str, Any]) -> None:
                entry = next(s for s in doc["recording_servers"] if s["name"] == "rec-1")
                entry["address"] = f"{rec.address}:{relay.address[1]}"

            site.reapply(through_relay)  # where the spare probes rec-1 (its API binds as before)
            start_us = now_us()
            site.start_all()
            wait_for("rec-1 confirmed", lambda: site.alive("rec-1", confirmed=True), 20)
            time.sleep(3.0)
            for _ in range(4):
                relay.pause(0.7)  # longer than the probe timeout (0.5 s)
                time.sleep(2.5)
            time.sleep(2.0)
        finally:
            relay.close()
        events = [e for e in site.events() if e.server == "rec-1" and e.wall_us >= start_us]
        print("\n".join(e.line() for e in events))
        print("relay:", relay.counts)
        assert relay.counts.stalled >= 1 and relay.counts.pauses == 4, relay.counts
        assert relay.counts.relayed_bytes > 0, "the spare never probed through the relay"
        claims = [e.line() for e in events if e.kind == "claimed"]
        assert not claims, claims
        assert site.claim("rec-1") is None
        assert site.alive("rec-1")


def test_a_camera_behind_a_lossy_link_is_recorded_with_its_losses_reported(
        tmp_path: Path) -> None:
    camera = "rec-1-c1"
    with FailoverSite(tmp_path, servers={"rec-1": 1}, spares=["spare-1"]) as site:
        assert site.sim is not None
        parts = urlsplit(site.sim.rtsp_url(camera))
        assert parts.hostname is not None and parts.port is not None
        with Relay(("127.0.0.1", 0), (parts.hostname, parts.port), delay_s=0.05) as relay:
            lossy = urlunsplit(parts._replace(netloc=f"127.0.0.1:{relay.address[1]}"))

            def through_relay(doc: dict[str, Any]) -> None:
                for server in doc["recording_servers"]:
                    for cam in server.get("cameras", []):
                        if cam["id"] == camera:
                            cam["url"] = lossy

            site.reapply(through_relay)
            site.start("rec-1")
            node = site.node("rec-1")
            base = f"http://127.0.0.1:{site.nodes['rec-1'].port}/api/v1"
            headers = {"Authorization": f"Bearer {TOKEN}"}

            def recording() -> bool:
                health = httpx.get(f"{base}/health", headers=headers, timeout=5).json()
                return any(c["camera_id"] == camera and c["state"] == "recording"
                           for c in health["cameras"])

            wait_for("the camera recording through the relay", recording, 30, interval=0.3)
            start_us = now_us()
            time.sleep(3.0)
            relay.pause(1.0)  # frames late, then all at once
            time.sleep(3.0)
            for _ in range(2):
                relay.reset_all()  # the session breaks: frames lost until the reconnect
                time.sleep(0.5)
                wait_for("recording again after the reset", recording, 30, interval=0.3)
                time.sleep(2.5)
            assert node.process is not None and node.process.poll() is None, "the node died"
            timeline = httpx.get(f"{base}/cameras/{camera}/timeline", headers=headers,
                                 params={"from": start_us - 5_000_000, "to": now_us()},
                                 timeout=5).json()
            runs = httpx.get(f"{base}/cameras/{camera}/runs", headers=headers,
                             params={"from": start_us - 5_000_000, "to": now_us()},
                             timeout=5).json()
        print("relay:", relay.counts)
        print("gaps:", timeline["gaps"])
        node.stop()
        store = site.store_of("rec-1")
        try:
            numbers = [t.frame_no for t in camera_frames(store, camera)]
        finally:
            store.close()
        twice = sorted(n for n in set(numbers) if numbers.count(n) > 1)
        assert not twice, f"frames stored twice: {twice[:20]}"
        assert relay.counts.resets == 2 and relay.counts.accepted >= 3, relay.counts
        assert len(runs["runs"]) >= 3, runs  # one per connection: the losses are on record
        inner_gaps = [g for g in timeline["gaps"] if g["start_wall_us"] > start_us]
        assert inner_gaps, timeline
        lost = max(numbers) - min(numbers) + 1 - len(numbers)
        print(f"{len(runs['runs'])} runs, {len(inner_gaps)} gap(s), {lost} frame(s) lost of "
              f"{max(numbers) - min(numbers) + 1}")
