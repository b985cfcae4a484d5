"""Real processes: ineligible servers are reported unprotected before any failure and are not
taken over when killed (a `refused` event says why); the eligible server beside them is."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotspare.cli.main import main as cli_main
from hotspare.sitestate.events import Event
from tests.support.site import TOKEN, FailoverSite, wait_for

pytestmark = pytest.mark.slow

INELIGIBLE = {"rec-big": "too_many_cameras", "rec-bsd": "netbsd", "rec-fg": "frame_grabber"}


def _report(site: FailoverSite, node: str) -> dict[str, Any]:
    answer = httpx.get(f"http://127.0.0.1:{site.nodes[node].port}/api/v1/site/protection",
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _servers(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in report["servers"]}


def _codes(server: dict[str, Any]) -> list[str]:
    return [r["code"] for r in server["reasons"]]


def test_ineligible_servers_unprotected_and_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    with FailoverSite(tmp_path, servers={"rec-1": 2, "rec-big": 25, "rec-bsd": 1, "rec-fg": 1},
                      spares=["spare-1"], spare_licences=1, camera_licences=20,
                      server_options={"rec-bsd": {"platform": "netbsd"},
                                      "rec-fg": {"frame_grabber_inputs": 2}},
                      shared_paths={"rec-big": 2}) as site:
        site.start_all(timeout=45)

        # Before any failure: the live report (API on a spare and on a server, and the CLI).
        for node in ("spare-1", "rec-bsd"):
            servers = _servers(_report(site, node))
            assert servers["rec-1"]["protected"], servers["rec-1"]
            assert servers["rec-1"]["candidate_spares"] == ["spare-1"]
            for name, code in INELIGIBLE.items():
                assert not servers[name]["protected"] and _codes(servers[name]) == [code], \
                    servers[name]
        spare = _report(site, "rec-1")["spares"][0]
        room = spare.pop("room")  # on this machine's own disk: its level depends on the disk
        assert room["server"] == "rec-big" and room["level"] in ("ok", "low", "no_room"), room
        assert spare == {"name": "spare-1", "licensed": True, "allotment": 20, "limit": 20,
                         "state": "idle", "covering": None,
                         "standby": {"sessions": 0, "mbps": 0.0, "max_sessions": 16,
                                     "max_mbps": 100.0}}
        capsys.readouterr()
        assert cli_main(["protection", "--config", str(site.node("rec-1").config_path)]) == 0
        out = capsys.readouterr().out
        assert "spare-1: licensed, allotment 20 cameras; idle" in out
        assert "rec-big has 25 cameras; the most any licensed spare may take is 20" in out
        assert "rec-1: protected (spares: spare-1)" in out
        print(out)

        # ... and announced as events (once each, by whichever node noticed first).
        for name, code in INELIGIBLE.items():
            event = site.wait_event("protection", name, timeout=30)
            assert code in event.data["reasons"] and "To do:" in event.message, event

        # The ineligible servers die: each is refused, with its reason. (Killed before rec-1: a
        # spare that is covering does not judge other servers, so it would not say why.)
        for name in INELIGIBLE:
            site.node(name).kill()

        def refusals(server: str, code: str) -> list[Event]:
            return [e for e in site.events() if e.kind == "refused" and e.server == server
                    and code in e.data.get("reasons", [])]

        for name, code in INELIGIBLE.items():
            refused = wait_for(f"refused {name} with {code}",
                               functools.partial(refusals, name, code), 20, 0.2)
            assert "spare-1 may not take over" in refused[0].message, refused[0]
        # The eligible server beside them dies too: it is taken over.
        site.node("rec-1").kill()
        claimed = site.wait_event("claimed", "rec-1", timeout=20)
        assert claimed.node == "spare-1"
        time.sleep(2.0)
        for name in INELIGIBLE:
            assert site.claim(name) is None, name
        claim = site.claim("rec-1")
        assert claim is not None and claim["spare"] == "spare-1"

        report = _report(site, "spare-1")
        servers = _servers(report)
        assert servers["rec-1"]["protected"] and servers["rec-1"]["covered_by"] == "spare-1"
        assert report["spares"][0]["state"] == "covering"
        assert report["spares"][0]["covering"] == "rec-1"
        print(site.event_lines())
    elapsed = time.monotonic() - started
    print(f"test took {elapsed:.1f} s")
    assert elapsed < 120
