"""The streams real cameras send, through a SIGKILL failover: H.265, H.264 and H.265 with B-frames,
H.265 with several slices, some cameras gapless and some standard.

What a user receives is read frame by frame (tests/support/served.py): while the spare covers, at
handback and after re-insert, node VOD, site VOD and download serve every frame once, none missing
for the gapless cameras and, for the standard ones, only inside the takeover window; an evidence
export over the takeover passes `export verify` and holds the same frames once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import av
import pytest

from hotspare.camerasim.sei import find_tags
from hotspare.cli.main import main as cli_main
from tests.e2e.test_gapless import standby_ready
from tests.support.camsim import now_us
from tests.support.export_keys import give_export_key
from tests.support.served import assert_served_once, check_served
from tests.support.site import TOKEN, FailoverSite, check_exact, wait_for

pytestmark = pytest.mark.slow

STREAMS = {
    "rec-1-c1": "codec=h265,bframes=2",
    "rec-1-c2": "bframes=2",
    "rec-1-c3": "codec=h265",
    "rec-1-c4": "codec=h265,slices=4",
    "rec-1-c5": "bframes=2",
}
GAPLESS = ["rec-1-c1", "rec-1-c2", "rec-1-c3"]
STANDARD = ["rec-1-c4", "rec-1-c5"]


def _gapless_cameras(doc: dict[str, Any]) -> None:
    for camera in doc["recording_servers"][0]["cameras"]:
        if camera["id"] in GAPLESS:
            camera["protection"] = "gapless"


def _clip_frames(clip: Path) -> list[int]:
    numbers: list[int] = []
    with av.open(str(clip)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                numbers += [t.frame_no for t in find_tags(bytes(packet))]
    return numbers


def _export_and_verify(site: FailoverSite, tmp: Path, camera: str, begin_us: int, end_us: int,
                       public: Path, capsys: pytest.CaptureFixture[str]) -> list[int]:
    """Export `camera` over the range from the master, verify it; the clip's frame numbers."""
    token_file = tmp / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    clip, manifest = tmp / f"{camera}.mp4", tmp / f"{camera}.manifest.json"
    capsys.readouterr()
    code = cli_main(["export", camera, "--from", str(begin_us), "--to", str(end_us),
                     "-o", str(clip), "--node", site.api_url("rec-1"),
                     "--token-file", str(token_file), "--quiet"])
    out = capsys.readouterr()
    assert code == 0, (camera, out.out + out.err)
    code = cli_main(["export", "verify", str(clip), str(manifest), "--key", str(public)])
    out = capsys.readouterr()
    assert code == 0, (camera, out.out + out.err)
    return _clip_frames(clip)


def test_h265_and_b_frame_cameras_fail_over_with_every_frame_served_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    site = FailoverSite(tmp_path, servers={"rec-1": len(STREAMS)}, spares=["spare-1"],
                        segment_seconds=2.0)
    site.camera_streams = dict(STREAMS)
    with site:
        assert site.sim is not None
        _private, public = give_export_key(site, tmp_path / "keys")
        site.reapply(_gapless_cameras)
        # From the start: a B-frame run's first segment, written while its decode times were
        # being made up, once came out a frame long and lost its last B-frame from playback.
        begin_us = now_us()
        site.start_all()
        wait_for("gapless cameras pre-buffered",
                 lambda: standby_ready(site, "spare-1", GAPLESS, 3.0), 40)
        crash_us = now_us()
        site.node("rec-1").kill()
        recording = site.wait_event("recording", "rec-1", timeout=20, after_us=crash_us)
        gapless = recording.data["gapless"]
        assert sorted(gapless) == GAPLESS, gapless
        assert all(v["prebuffered"] and v["covered"] for v in gapless.values()), gapless
        time.sleep(4.0)  # the spare records two segments per camera
        with capsys.disabled():
            served = check_served(site, "spare-1", "rec-1", begin_us, ("site VOD",), "covering")
        back_us = now_us()
        site.start("rec-1")
        site.wait_event("handback", "rec-1", timeout=30, after_us=back_us)
        with capsys.disabled():
            served += check_served(site, "rec-1", "rec-1", begin_us, ("site VOD",), "handback")
        done = site.wait_event("done", "rec-1", timeout=60, after_us=back_us)
        wait_for("claim released", lambda: site.claim("rec-1") is None, 10)
        time.sleep(2.0)
        with capsys.disabled():
            served += check_served(site, "rec-1", "rec-1", begin_us,
                                   ("node VOD", "site VOD", "download"), "re-inserted")
        end_us = now_us()
        # What a standard camera may miss, as in test_audio.py (2 s segments): from the last
        # fragment the killed server flushed to the spare's first frame.
        takeover = (crash_us - 2_500_000, recording.wall_us)
        exported = {c: _export_and_verify(site, tmp_path, c, begin_us, end_us, public, capsys)
                    for c in STREAMS}
        site.node("rec-1").stop()
        walls = {c: {r.frame: r.wall_us for r in site.sim.frames(c) if r.delivered}
                 for c in STREAMS}
        with capsys.disabled():
            print(f"\ncrash→spare recording {(recording.wall_us - crash_us) / 1e6:.2f} s; "
                  f"re-insert {done.data}")
            for camera, numbers in exported.items():
                lost = [n for n in walls[camera]
                        if min(numbers) <= n <= max(numbers) and n not in set(numbers)]
                when = [(n, round((walls[camera][n] - crash_us) / 1e6, 2)) for n in lost]
                print(f"export {camera} ({STREAMS[camera]}): {len(numbers)} frames, "
                      f"{len(numbers) - len(set(numbers))} twice, missing (frame, s after the "
                      f"crash) {when}")
            print(f"handback {(back_us - crash_us) / 1e6:.2f} s after the crash")
        for camera, numbers in exported.items():
            assert len(numbers) == len(set(numbers)), (camera, "a frame twice in the export")
            allowed = [] if camera in GAPLESS else [takeover]
            lost = [n for n in walls[camera] if min(numbers) <= n <= max(numbers)
                    and n not in set(numbers)
                    and not any(a <= walls[camera][n] <= b for a, b in allowed)]
            assert not lost, (camera, "export misses frames", lost[:20])
            # The clip spans the takeover: from before the crash to after the handback.
            assert walls[camera][min(numbers)] < crash_us - 1_000_000, camera
            assert walls[camera][max(numbers)] > back_us, camera
        missing = check_exact(site, "rec-1", [takeover], end_us)
        for camera in GAPLESS:
            assert not missing[camera], (camera, missing[camera])
        assert_served_once(site, "rec-1", served, [takeover])
        for phase, result in served:
            for camera in GAPLESS:
                assert not result.missing[camera], (phase, result.way, camera,
                                                    result.missing[camera][:20])
