"""The CLI follows the master: given the old master's address and another node's, `hotspare status`,
`events` and `timeline --site` report the site from whichever node serves the master now, also
after the master was killed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.site import TOKEN, FailoverSite, wait_for


def status(tmp_path: Path, *urls: str) -> dict:  # type: ignore[type-arg]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    args = [sys.executable, "-m", "hotspare", "status", "--token-file", str(token_file), "--json"]
    for url in urls:
        args += ["--node", url]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.slow
def test_status_follows_the_master_through_its_failover(tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 1, "rec-2": 1}, spares=["spare-1"]) as site:
        site.start_all()
        master_url = site.node("rec-1").url
        other_url = site.node("rec-2").url
        spare_url = site.node("spare-1").url
        assert master_url and other_url and spare_url

        before = status(tmp_path, other_url)  # not the master: it names the master
        assert before["master_endpoint"] == {"name": "rec-1", "url": master_url}
        states = {s["name"]: s["state"] for s in before["servers"]}
        assert states == {"rec-1": "recording", "rec-2": "recording"}

        token_file = tmp_path / "token"
        text = subprocess.run([sys.executable, "-m", "hotspare", "status", "--node", other_url,
                               "--token-file", str(token_file)],
                              capture_output=True, text=True, timeout=60)
        assert text.returncode == 0, text.stderr
        assert f"master rec-1 at {master_url}" in text.stdout
        assert "spare-1" in text.stdout and "protected" in text.stdout
        print(text.stdout)

        site.node("rec-1").kill()
        killed = time.monotonic()
        wait_for("spare-1 to claim the master", lambda: site.claim("rec-1"), 30)
        after = wait_for(
            "the site to publish the spare as the master's address",
            lambda: (lambda s: s if s["master_endpoint"]["url"] == spare_url else None)(
                status(tmp_path, master_url, other_url)),
            30, interval=0.5)
        print(f"master served by spare-1 {time.monotonic() - killed:.2f} s after the kill")
        rec1 = next(s for s in after["servers"] if s["name"] == "rec-1")
        assert rec1["covered_by"] == "spare-1"
        assert rec1["owner"]["node"] == "spare-1"

        # The site's events through whichever node is master now: the takeover of the master is
        # among them, told by the spare that made it.
        def takeover_event() -> dict | None:  # type: ignore[type-arg]
            result = subprocess.run(
                [sys.executable, "-m", "hotspare", "events", "--json", "--node", master_url,
                 "--node", other_url, "--token-file", str(token_file)],
                capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            events = [json.loads(line) for line in result.stdout.splitlines()]
            assert [e["wall_us"] for e in events] == sorted(e["wall_us"] for e in events)
            return next((e for e in events if e["kind"] == "claimed" and e["server"] == "rec-1"),
                        None)

        claimed = wait_for("the master's takeover in `hotspare events`", takeover_event, 30,
                           interval=0.5)
        assert claimed["node"] == "spare-1"

        # The merged timeline of the dead master's camera, through whichever node is master now:
        # rec-1's own video cannot be asked (it is down, and said so); the spare's is there.
        def site_timeline() -> dict | None:  # type: ignore[type-arg]
            result = subprocess.run(
                [sys.executable, "-m", "hotspare", "timeline", "rec-1-c1", "--site", "--json",
                 "--node", master_url, "--node", other_url, "--token-file", str(token_file),
                 "--from", "-2m"], capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            answer = dict(json.loads(result.stdout))
            return answer if any(r["recorded_by"] == "spare-1" for r in answer["runs"]) else None

        merged = wait_for("spare-1's video in the merged timeline", site_timeline, 30,
                          interval=0.5)
        assert {r["recorded_as"] for r in merged["runs"]} == {"rec-1"}
        down = [src for src in merged["sources"] if not src["ok"]]
        assert [src["node"] for src in down] == ["rec-1"], merged["sources"]

        # Only the dead master's address: the CLI says clearly that nothing answered.
        dead = subprocess.run([sys.executable, "-m", "hotspare", "status", "--node", master_url,
                               "--token-file", str(token_file)],
                              capture_output=True, text=True, timeout=60)
        assert dead.returncode == 1
        assert "no node of the site answered" in dead.stderr
