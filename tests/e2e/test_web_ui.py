"""The master's web UI in headless Chromium (Debian's package, driven by Playwright).

One site (two recording servers with one camera each, one spare), one browser, one story: the
overview shows the site; rec-2 is SIGKILLed and the open page shows it covered by the spare
without a reload; rec-2 comes back and the camera's timeline shows its own video and the spare's,
coloured by who recorded them; a click on the timeline plays video and the scrubber carries it
across the takeover in wall time, and a range shift-dragged over the takeover exports as one clip
that `hotspare export verify` accepts; the live grid (layout kept across reloads) plays several
cameras and its tile follows rec-2's camera to the spare; the master is SIGKILLed and the page
reconnects to the spare now serving it, via the endpoint list. Along the way: nothing
of the app shows before login, /favicon.ico needs no token, and the UTC toggle changes the times
shown and is kept. Screenshots of each step go to test-artifacts/web-ui/.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from hotspare.cli.main import main as cli_main
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, playwright_sync_api, wait_tile_plays
from tests.support.export_keys import give_export_key
from tests.support.site import TOKEN, FailoverSite

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web-ui"


@pytest.mark.timeout(210)
def test_overview_takeover_timeline_and_playback(tmp_path: Path) -> None:
    sync_api = playwright_sync_api()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with FailoverSite(tmp_path, servers={"rec-1": 1, "rec-2": 1}, spares=["spare-1"]) as site, \
            sync_api.sync_playwright() as pw:
        _private, public_key = give_export_key(site, tmp_path / "export-keys")
        site.start_all()
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        console: list[str] = []
        try:
            # A zone away from UTC, so the UTC toggle visibly changes the times shown.
            page = browser.new_page(viewport={"width": 1200, "height": 1000},
                                    timezone_id="Asia/Kolkata")
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text} "
                                                          f"{msg.location.get('url', '')}"))
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            master = f"http://127.0.0.1:{site.nodes['rec-1'].port}"
            page.goto(f"{master}/ui/")

            # Before login only the login box shows, no empty panel of the app under it; the
            # icon a browser fetches on its own answers without the token.
            page.wait_for_selector("#login", state="visible", timeout=5000)
            assert page.is_hidden("#app") and page.is_hidden("#logout")
            assert page.eval_on_selector("#app", "e => getComputedStyle(e).display") == "none"
            favicon = page.request.get(f"{master}/favicon.ico")
            assert favicon.status == 200, favicon.status
            assert favicon.headers["content-type"].startswith("image/svg+xml")
            page.screenshot(path=str(ARTIFACTS / "0-login.png"), full_page=True)
            page.fill("#token", "wrong-token")
            page.click("#login-form button")
            page.wait_for_selector("#login-error:has-text('wrong token')", timeout=5000)
            page.fill("#token", TOKEN)
            page.click("#login-form button")

            # The overview shows the site.
            page.wait_for_selector('tr[data-server="rec-1"][data-state="recording"]',
                                   timeout=10_000)
            page.wait_for_selector('tr[data-server="rec-2"][data-state="recording"]',
                                   timeout=10_000)
            page.wait_for_selector('tr[data-spare="spare-1"][data-state="idle"]', timeout=10_000)
            # The spare's buffer room as it publishes it (levels: tests/unit/test_spare_room.py).
            room = page.wait_for_selector('tr[data-spare="spare-1"] td[data-room]'
                                          ':not([data-room="unknown"])', timeout=10_000)
            assert room is not None and "GB free" in room.inner_text(), room
            page.wait_for_selector('.timeline[data-camera="rec-2-c1"] '
                                   '.run[data-recorded-by="rec-2"]', timeout=15_000)
            page.select_option("#range", "120")
            page.screenshot(path=str(ARTIFACTS / "1-overview.png"), full_page=True)

            # The live grid: 2 x 2 by default, the cameras in order, each tile playing.
            for camera in ("rec-1-c1", "rec-2-c1"):
                wait_tile_plays(page, camera)
            assert page.locator(".tile").count() == 4
            # The operator's layout and choice of camera outlive a reload.
            page.select_option("#grid-layout", "1")
            page.select_option('.tile[data-tile="0"] select', "rec-2-c1")
            page.reload()
            page.wait_for_selector('.tile[data-tile="0"][data-camera="rec-2-c1"]', timeout=10_000)
            assert page.locator(".tile").count() == 1
            assert page.input_value("#grid-layout") == "1"
            assert page.input_value("#range") == "120"  # the timelines' span is kept too
            page.select_option("#grid-layout", "4")
            page.select_option('.tile[data-tile="1"] select', "rec-1-c1")
            wait_tile_plays(page, "rec-2-c1")
            wait_tile_plays(page, "rec-1-c1")
            page.screenshot(path=str(ARTIFACTS / "1b-live-grid.png"), full_page=True)

            # SIGKILL rec-2: the open page shows it covered by the spare, without a reload.
            time.sleep(2.0)
            killed = time.monotonic()
            site.node("rec-2").kill()
            page.wait_for_selector('tr[data-server="rec-2"][data-state="covered-by-spare-1"]',
                                   timeout=10_000)
            shown_after = time.monotonic() - killed
            page.wait_for_selector('tr[data-spare="spare-1"][data-state="covering"]',
                                   timeout=5000)
            page.wait_for_selector('.timeline[data-camera="rec-2-c1"] '
                                   '.run[data-recorded-by="spare-1"]', timeout=15_000)
            # The tile of rec-2's camera follows it to the spare: its picture moves again.
            wait_tile_plays(page, "rec-2-c1", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "2-covered-by-spare.png"), full_page=True)
            print(f"rec-2 shown covered by spare-1 {shown_after:.1f} s after SIGKILL")
            assert shown_after < 6.0

            # Times in the browser's zone, or in UTC like the CLI: the choice outlives a reload.
            claimed = page.locator('#events li[data-kind="claimed"]').first
            claimed.wait_for(timeout=5000)
            wall = datetime.fromtimestamp(int(claimed.get_attribute("data-wall-us") or 0) / 1e6,
                                          UTC)
            in_utc = wall.strftime("%H:%M:%SZ ")
            local = claimed.inner_text()
            assert not local.startswith(in_utc), local
            assert (wall + timedelta(hours=5, minutes=30)).strftime(":%M:%S") in local, local
            page.check("#utc")
            assert claimed.inner_text().startswith(in_utc), claimed.inner_text()
            page.reload()
            page.wait_for_selector('#events li[data-kind="claimed"]', timeout=10_000)
            assert page.is_checked("#utc")
            text = page.locator('#events li[data-kind="claimed"]').first.inner_text()
            assert text.startswith(in_utc), text

            # rec-2 returns: its timeline shows its own video and the spare's stretch.
            time.sleep(2.0)
            site.start("rec-2")
            bar = '.timeline[data-camera="rec-2-c1"]'
            page.wait_for_selector('tr[data-server="rec-2"][data-state="recording"]',
                                   timeout=40_000)
            page.wait_for_selector(f'{bar} .run[data-recorded-by="rec-2"]', timeout=10_000)
            page.wait_for_selector(f'{bar} .run[data-recorded-by="spare-1"]', timeout=10_000)
            recorded_by = page.eval_on_selector_all(
                f"{bar} .run", "runs => runs.map(r => r.dataset.recordedBy)")
            assert "spare-1" in recorded_by and "rec-2" in recorded_by, recorded_by
            page.screenshot(path=str(ARTIFACTS / "3-timeline-takeover.png"), full_page=True)

            # Click the timeline on rec-2's first run: the <video> plays.
            run = page.locator(f'{bar} .run[data-recorded-by="rec-2"]').first
            box = run.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_function("document.querySelector('#player').currentTime > 1.5",
                                   timeout=20_000)
            assert page.is_hidden("#hls-note"), page.inner_text("#hls-note")
            page.screenshot(path=str(ARTIFACTS / "4-playback.png"), full_page=True)

            # The scrubber runs in wall time across rec-2's run and the spare's stretch: set it
            # 3 s before the spare's first video and play across the takeover: wall time only
            # moves forward, the player never stalls, and it reaches the spare's video.
            page.wait_for_selector("#scrubber:not([disabled])", timeout=5000)
            spare_run = page.locator(f'{bar} .run[data-recorded-by="spare-1"]').first
            spare_start = int(spare_run.get_attribute("data-start") or 0)
            page.eval_on_selector("#scrubber", "(s, v) => { s.value = v; "
                                  "s.dispatchEvent(new Event('change')); }",
                                  str((spare_start - 3_000_000) // 1000))
            samples = sample_playback(page, seconds=7.0)
            walls = [w for _, w in samples]
            assert walls[0] < spare_start < walls[-1], (spare_start, samples)
            assert all(b >= a - 50_000 for a, b in pairwise(walls)), samples
            longest_stall = longest_stall_s(samples)
            print(f"scrubber across the takeover: longest stall {longest_stall:.2f} s")
            assert longest_stall < 1.5, samples
            page.screenshot(path=str(ARTIFACTS / "4b-scrubber-across-takeover.png"),
                            full_page=True)

            # Export: shift-drag over the takeover on rec-2's timeline, export with a progress
            # bar, download both files; the clip verifies against the site's public key.
            bar_box = page.locator(bar).bounding_box()
            assert bar_box is not None
            start_x = page.eval_on_selector(bar, "(b, w) => { const f = +b.dataset.from, "
                                            "t = +b.dataset.to, r = b.getBoundingClientRect(); "
                                            "return r.left + (w - f) / (t - f) * r.width; }",
                                            spare_start - 4_000_000)
            y = bar_box["y"] + bar_box["height"] / 2
            page.keyboard.down("Shift")
            page.mouse.move(start_x, y)
            page.mouse.down()
            page.mouse.move(start_x + 60, y, steps=5)
            page.mouse.up()
            page.keyboard.up("Shift")
            page.wait_for_selector(f"{bar} .selection", timeout=5000)
            page.click("#export")
            page.wait_for_selector("#export-status[data-state]", timeout=5000)
            page.wait_for_selector("#export-status[data-state=done]", timeout=60_000)
            assert page.eval_on_selector("#export-progress", "p => p.value === p.max")
            page.screenshot(path=str(ARTIFACTS / "4c-export.png"), full_page=True)
            files = {}
            for which in ("clip", "manifest"):
                with page.expect_download() as download:
                    page.click(f"#export-links a.{which}")
                files[which] = tmp_path / download.value.suggested_filename
                download.value.save_as(files[which])
            verified = cli_main(["export", "verify", str(files["clip"]), str(files["manifest"]),
                                 "--key", str(public_key)])
            assert verified == 0
            pieces = json.loads(files["manifest"].read_text())["pieces"]
            assert {p["recorded_by"] for p in pieces} == {"rec-2", "spare-1"}, pieces

            # The token went to the master only; the other nodes saw signed grants.
            assert not [u for u in requested if TOKEN in u and not u.startswith(master)]
            assert [u for u in requested if "grant=" in u and not u.startswith(master)]

            # The master dies: the spare covers it, and the open page finds it through the
            # endpoint list (asking rec-2) and carries on from the spare's address.
            spare_url = f"http://127.0.0.1:{site.nodes['spare-1'].port}"
            page.wait_for_selector('tr[data-spare="spare-1"][data-state="idle"]', timeout=15_000)
            site.node("rec-1").kill()
            page.wait_for_selector(f"#conn:has-text('connected to {spare_url}')", timeout=20_000)
            page.wait_for_selector('tr[data-server="rec-1"][data-state="covered-by-spare-1"]',
                                   timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "5-master-covered.png"), full_page=True)
            assert not [line for line in console if "favicon" in line], console
        except Exception:
            try:
                page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            except Exception:
                pass
            print("browser console:\n" + "\n".join(console[-50:]))
            print("site events:\n" + site.event_lines())
            raise
        finally:
            browser.close()
    assert time.monotonic() - started < 180


def sample_playback(page: Any, seconds: float) -> list[tuple[float, int]]:
    """(player seconds, wall µs shown by the scrubber) every 0.1 s for `seconds`, sampled in the
    page itself so that a slow test machine does not thin the samples out."""
    samples: list[list[float]] = page.evaluate(
        """ms => new Promise((done) => {
             const out = [], v = document.querySelector('#player');
             const t = document.querySelector('#scrub-time');
             const timer = setInterval(() => {
               const wall = Number(t.dataset.wallUs || 0);
               if (wall) out.push([v.currentTime, wall]);
             }, 100);
             setTimeout(() => { clearInterval(timer); done(out); }, ms);
           })""", int(seconds * 1000))
    assert len(samples) > seconds * 5, samples
    return [(float(c), int(w)) for c, w in samples]


def longest_stall_s(samples: list[tuple[float, int]]) -> float:
    """The longest stretch (in samples × 0.1 s) over which the player's time did not move."""
    longest = run = 0
    for (a, _), (b, _) in pairwise(samples):
        run = run + 1 if b <= a else 0
        longest = max(longest, run)
    return longest * 0.1
