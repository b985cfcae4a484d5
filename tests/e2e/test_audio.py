"""Cameras with audio, as a user receives them: the node's VOD playlist, segment download and an
evidence export carry the video frames exactly once and audio over the same time, in sync.

The simulated cameras beep for exactly the interval of every keyframe, on the video's clock; a
client that plays both streams finds each beep at the keyframe's capture time, G.711 to the
sample and the camera's AAC late by its encoder's delay (≈ 100 ms, docs/camera-sim.md). What
the recorder, playback and export must do is not move that offset.
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import httpx
import pytest

from hotspare.cli.main import main as cli_main
from tests.e2e.test_gapless import standby_ready
from tests.support.audio import AudioReport, read_audio
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, playwright_sync_api, wait_tile_plays
from tests.support.camsim import now_us
from tests.support.export_keys import give_export_key
from tests.support.served import (
    assert_served_once,
    check_served,
    downloaded_pieces,
    playlist_pieces,
)
from tests.support.site import TOKEN, FailoverSite, wait_for

CAMERAS = {"rec-1-c1": "audio=aac", "rec-1-c2": "audio=pcmu"}
AAC_FRAME_US = 1024 / 16_000 * 1e6  # the sim's AAC: 16 kHz
EDGE_S = 2 * 1024 / 8_000
"""Audio may start or end this much inside the video of a run: the G.711 transcoder's first AAC
frame is the first of its grid at or after the first keyframe, and it holds up to two AAC frames
of 1024 samples at 8 kHz, written with the next segment."""

AAC_START_S = AAC_FRAME_US / 1e6 + 0.001
"""The copied AAC starts with the first packet timed at or after the run's first keyframe, also
when it arrived before that keyframe (it often does: the keyframe is large), so at most one
packet after it."""


G711_JOIN_GAP_S = 1024 / 8_000
"""Not solved (docs/recorder.md, *Audio in the gapless pre-buffer*): where two runs' segments of
a G.711 camera meet at a segment boundary, each run's transcoder has its own AAC frame grid and
the two sides can miss up to about one AAC frame between them (seen: 48–100 ms in about 5 of
18 runs). The copied AAC camera is held to 1 ms."""


def _assert_covers(camera: str, report: AudioReport, where: str,
                   max_gap_s: float = 0.001) -> None:
    """Audio over the video's whole time: nothing missing inside (`max_gap_s`), little at the
    edges."""
    start, end = report.edges_s()
    start_bound = AAC_START_S if CAMERAS[camera] == "audio=aac" else EDGE_S
    assert start <= start_bound and end <= EDGE_S, (where, camera, start, end)
    assert report.largest_gap_s() <= max_gap_s, (where, camera, report.largest_gap_s(),
                                                  "gaps", report.gaps(), "pieces", report.video)
    assert report.uncovered_s() <= max(start, 0.0) + max(end, 0.0) + max_gap_s, (where, camera)


def _assert_in_sync(camera: str, report: AudioReport, where: str) -> None:
    errors = report.onset_errors_us
    print(f"{where} {camera}: codecs {report.codecs}, audio missing over "
          f"{report.uncovered_s():.3f} s of video (start, end: {report.edges_s()}), largest "
          f"audio gap {report.largest_gap_s():.3f} "
          f"s, beep onset - keyframe µs {[round(e) for e in errors]}")
    assert report.codecs == {"aac"} and not report.pieces_without_audio, (where, report.codecs)
    assert len(errors) >= 3, (where, camera, errors)
    assert max(errors) - min(errors) <= 2_000, (where, camera, errors)  # the offset never moves
    if CAMERAS[camera] == "audio=pcmu":  # G.711 made AAC by the recorder: in sync to the sample
        assert max(abs(e) for e in errors) <= 5_000, (where, camera, errors)
    else:  # the camera's AAC, copied: late by the camera's encoder delay only (< 2 AAC frames)
        assert 0 <= min(errors) and max(errors) <= 2 * AAC_FRAME_US, (where, camera, errors)


def _browser_plays_audio(site: FailoverSite) -> None:
    """The web UI's live tiles (hls.js in Chromium) play each camera and decode its audio."""
    sync_api = playwright_sync_api()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(f"http://127.0.0.1:{site.nodes['rec-1'].port}/ui/")
            page.fill("#token", TOKEN)
            page.click("#login-form button")
            for camera in CAMERAS:
                wait_tile_plays(page, camera)
                played = page.eval_on_selector(
                    f'.tile[data-camera="{camera}"] video',
                    "v => [v.webkitAudioDecodedByteCount, v.error && v.error.message]")
                print(f"browser {camera}: audio bytes decoded, error: {played}")
                assert played[0] > 0 and played[1] is None, (camera, played)
        finally:
            browser.close()


def _audio_of(pieces: list[bytes], *, capture_clock: bool = False) -> AudioReport:
    report = AudioReport()
    for data in pieces:
        read_audio(data, report, capture_clock=capture_clock)
    return report


@pytest.mark.slow
def test_audio_is_played_downloaded_and_exported_with_every_frame_once_in_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # 2 s segments, a keyframe a second: a beep inside every piece, not only at its start.
    site = FailoverSite(tmp_path, servers={"rec-1": 2}, spares=[], segment_seconds=2.0)
    site.camera_streams = dict(CAMERAS)
    with site:
        _private, public = give_export_key(site, tmp_path / "keys")
        site.start_all()
        begin = now_us()
        time.sleep(8.0)
        end = now_us()
        with capsys.disabled():
            measured = check_served(site, "rec-1", "rec-1", begin, ("node VOD", "download"),
                                    "audio")
        assert_served_once(site, "rec-1", measured, allowed=[])
        base = f"http://127.0.0.1:{site.nodes['rec-1'].port}"
        span = f"from={begin}&to={end}"
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            for camera in CAMERAS:
                vod = [d for _, d in playlist_pieces(
                    client, f"{base}/api/v1/cameras/{camera}/playback.m3u8?{span}")]
                down = [d for _, _, d in downloaded_pieces(client, base, camera, begin, end)]
                for where, pieces in (("node VOD", vod), ("download", down)):
                    report = _audio_of(pieces)
                    with capsys.disabled():
                        _assert_in_sync(camera, report, where)
                    _assert_covers(camera, report, where)

        token_file = tmp_path / "token"
        token_file.write_text(TOKEN, encoding="utf-8")
        for camera in CAMERAS:
            clip = tmp_path / f"{camera}.mp4"
            manifest = tmp_path / f"{camera}.manifest.json"
            code = cli_main(["export", camera, "--from", str(begin), "--to", str(end),
                             "-o", str(clip), "--node", base, "--token-file", str(token_file),
                             "--quiet"])
            assert code == 0
            report = _audio_of([clip.read_bytes()])
            with capsys.disabled():
                _assert_in_sync(camera, report, "export")
            _assert_covers(camera, report, "export")
            with av.open(str(clip)) as container:
                assert container.streams.audio[0].codec_context.name == "aac"
            assert cli_main(["export", "verify", str(clip), str(manifest),
                             "--key", str(public)]) == 0
        with capsys.disabled():
            _browser_plays_audio(site)


@pytest.mark.slow
def test_audio_across_a_sigkill_failover_and_reinsert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """rec-1 killed, the spare records its audio cameras, rec-1 returns and the spare's video is
    re-inserted: every way a user receives it serves each frame once, and every piece, the
    original's and the spare's (cut ones too), carries its audio in sync."""
    site = FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"], segment_seconds=2.0)
    site.camera_streams = dict(CAMERAS)
    with site:
        site.start_all()
        begin_us = now_us()
        time.sleep(4.0)
        crash_us = now_us()
        site.node("rec-1").kill()
        recording = site.wait_event("recording", "rec-1", timeout=20)
        time.sleep(4.0)  # the spare records two segments per camera
        restart_us = now_us()
        site.start("rec-1")
        site.wait_event("done", "rec-1", timeout=60, after_us=restart_us)
        time.sleep(2.0)
        with capsys.disabled():
            served = check_served(site, "rec-1", "rec-1", begin_us,
                                  ("node VOD", "site VOD", "download"), "audio failover")
        allowed = [(crash_us - 2_500_000, recording.wall_us)]  # the takeover window
        assert_served_once(site, "rec-1", served, allowed)
        base = f"http://127.0.0.1:{site.nodes['rec-1'].port}"
        span = f"from={begin_us}&to={now_us()}"
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            for camera in CAMERAS:
                listed = client.get(f"{base}/api/v1/cameras/{camera}/segments",
                                    params={"from": begin_us, "to": now_us(), "limit": 1000})
                by = {s["recorded_by"] for s in listed.json()["segments"]}
                assert by == {"rec-1", "spare-1"}, (camera, by)
                for where, url in (
                    ("node VOD", f"{base}/api/v1/cameras/{camera}/playback.m3u8?{span}"),
                    ("site VOD", f"{base}/api/v1/site/cameras/{camera}/playback.m3u8?{span}"),
                ):
                    pieces = playlist_pieces(client, url)
                    report = _audio_of([data for _, data in pieces])
                    with capsys.disabled():
                        _assert_in_sync(camera, report, f"failover {where}")
                    # A piece's audio ends where its frames do (a cut piece's too), give or
                    # take the audio packet that spans its last frame's end.
                    assert report.overhang_s() <= EDGE_S / 2, (where, camera, report)


@pytest.mark.slow
def test_audio_through_a_gapless_sigkill_takeover(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Gapless cameras with audio: the spare's pre-buffer holds the audio with the video, so what
    it writes from the failed server's watermark carries both. After rec-1 returns and the spare's
    video is re-inserted, what rec-1 serves over the takeover (its own segments, then the
    spare's replay and live recording) has every frame once, none missing, and audio with no gap
    inside the video, in sync."""
    site = FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"], segment_seconds=2.0,
                        server_options={"rec-1": {"protection": "gapless"}})
    site.camera_streams = dict(CAMERAS)
    with site:
        site.start_all()
        wait_for("standby buffering",
                 lambda: standby_ready(site, "spare-1", list(CAMERAS), 4.0), 40)
        crash_us = now_us()
        begin_us = crash_us - 4_000_000
        site.node("rec-1").kill()
        recording = site.wait_event("recording", "rec-1", timeout=20, after_us=crash_us)
        gapless = recording.data["gapless"]
        assert all(v["prebuffered"] and v["covered"] for v in gapless.values()), gapless
        time.sleep(3.0)
        restart_us = now_us()
        site.start("rec-1")
        site.wait_event("done", "rec-1", timeout=60, after_us=restart_us)
        with capsys.disabled():
            served = check_served(site, "rec-1", "rec-1", begin_us, ("node VOD", "download"),
                                  "audio gapless re-inserted")
        assert_served_once(site, "rec-1", served, [])
        base = site.api_url("rec-1")
        span = f"from={begin_us}&to={restart_us}"  # the takeover; the handback is not judged
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            for camera in CAMERAS:
                listed = client.get(f"{base}/api/v1/cameras/{camera}/segments",
                                    params={"from": begin_us, "to": restart_us, "limit": 1000})
                by = {s["recorded_by"] for s in listed.json()["segments"]}
                assert by == {"rec-1", "spare-1"}, (camera, by)
                vod = [d for _, d in playlist_pieces(
                    client, f"{base}/api/v1/cameras/{camera}/playback.m3u8?{span}")]
                down = [d for _, _, d in downloaded_pieces(client, base, camera, begin_us,
                                                           restart_us)]
                for where, pieces in (("gapless node VOD", vod), ("gapless download", down)):
                    report = _audio_of(pieces, capture_clock=True)
                    with capsys.disabled():
                        _assert_in_sync(camera, report, where)
                    _assert_covers(camera, report, where, G711_JOIN_GAP_S
                                   if CAMERAS[camera] == "audio=pcmu" else 0.001)
