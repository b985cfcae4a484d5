"""`hotspare events --node …` reads the master's site API: each event once, oldest first, also when
following across a moment with no master (its failover). The master-following itself is
SiteClient's and is tested end to end in tests/e2e/test_master_follow.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotspare.cli.main import main
from hotspare.client import site_client
from hotspare.client.site_client import SiteUnreachable

T0 = 1_764_104_400_000_000


def _event(offset_s: float, kind: str, node: str = "spare-1") -> dict[str, Any]:
    return {"wall_us": T0 + int(offset_s * 1e6), "node": node, "kind": kind, "server": "rec-1",
            "message": f"{node} {kind} rec-1", "data": {}}


class _ScriptedSite:
    """Stands in for SiteClient: each get() plays the next step (an answer or an exception)."""

    def __init__(self, steps: list[Callable[[dict[str, Any]], Any]]) -> None:
        self.steps = steps
        self.asked: list[dict[str, Any]] = []

    def __call__(self, endpoints: list[str], token: str, timeout: float) -> _ScriptedSite:
        self.endpoints, self.token = endpoints, token
        return self

    def get(self, path: str, params: dict[str, Any]) -> Any:
        assert path == "/site/events"
        self.asked.append(dict(params))
        return self.steps.pop(0)(params)


def _answer(*events: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    return lambda params: {"events": list(events)}


def _raise(exc: BaseException) -> Callable[[dict[str, Any]], Any]:
    def step(params: dict[str, Any]) -> Any:
        raise exc

    return step


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("tok\n")
    return path


def _run(monkeypatch: pytest.MonkeyPatch, site: _ScriptedSite, *args: str) -> int:
    monkeypatch.setattr(site_client, "SiteClient", site)
    return main(["events", *args])


def test_events_from_the_site_api_of_any_nodes(monkeypatch: pytest.MonkeyPatch, token_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    site = _ScriptedSite([_answer(_event(0, "suspected"), _event(0.5, "claimed"))])
    code = _run(monkeypatch, site, "--node", "http://a:1,http://b:2", "--node", "http://c:3",
                "--token-file", str(token_file), "--json", "--limit", "5")
    assert code == 0
    assert site.endpoints == ["http://a:1", "http://b:2", "http://c:3"] and site.token == "tok"
    assert site.asked == [{"limit": 5}]
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["kind"] for e in printed] == ["suspected", "claimed"]
    assert printed[1] == _event(0.5, "claimed")


def test_follow_prints_each_event_once_and_rides_out_a_master_failover(
        monkeypatch: pytest.MonkeyPatch, token_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    late = _event(0.2, "suspected", node="spare-2")  # its node's clock is a little behind
    site = _ScriptedSite([
        _answer(_event(0, "claimed"), _event(1, "recording")),
        _raise(SiteUnreachable("no node of the site answered")),
        _raise(SiteUnreachable("no node of the site answered")),
        _answer(_event(0, "claimed"), late, _event(1, "recording"), _event(2, "returned")),
        _raise(KeyboardInterrupt()),
    ])
    code = _run(monkeypatch, site, "--node", "http://a:1", "--token-file", str(token_file),
                "--follow", "--interval", "0")
    assert code == 0
    out, err = capsys.readouterr()
    assert [line.split()[3] for line in out.splitlines()] == [
        "claimed", "recording", "suspected", "returned"]
    assert err.count("no node of the site answered; still trying") == 1
    # After the first answer it asks again from a little before the newest event it printed.
    assert site.asked[1]["after"] == T0 + 1_000_000 - 5_000_000


def test_without_follow_an_unreachable_site_is_an_error(
        monkeypatch: pytest.MonkeyPatch, token_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    site = _ScriptedSite([_raise(SiteUnreachable("no node of the site answered: a: refused"))])
    assert _run(monkeypatch, site, "--node", "http://a:1", "--token-file", str(token_file)) == 1
    assert "no node of the site answered" in capsys.readouterr().err


def test_node_and_etcd_sources_are_exclusive_and_node_needs_a_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--node", "http://a:1", "--etcd", "http://e:2379"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["events", "--node", "http://a:1"]) == 2
    assert "--node needs --token-file" in capsys.readouterr().err
    assert main(["events", "--node", "http://a:1", "--token-file", str(tmp_path / "none")]) == 2
    assert "cannot read the token file" in capsys.readouterr().err


def test_following_an_empty_log_says_it_waits_once(
        monkeypatch: pytest.MonkeyPatch, token_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A healthy new site (the demo) has no events: silence looked like a hung command."""
    site = _ScriptedSite([_answer(), _answer(), _answer(_event(0, "claimed")),
                          _raise(KeyboardInterrupt())])
    code = _run(monkeypatch, site, "--node", "http://a:1", "--token-file", str(token_file),
                "--follow", "--interval", "0")
    assert code == 0
    out, err = capsys.readouterr()
    assert err.count("no events yet; waiting for new ones") == 1
    assert "claimed" in out
