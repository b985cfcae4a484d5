"""Evidence export against a running site: the CLI asks the master, which builds the clip from
the site playlist and signs the manifest; `export verify` accepts it and refuses any change."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from hotspare.camerasim.sei import find_tags
from hotspare.cli.main import main as cli_main
from hotspare.export.manifest import decode_runs
from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.export_keys import give_export_key
from tests.support.served import playlist_frames
from tests.support.site import TOKEN, FailoverSite, wait_for


def _keys(site: FailoverSite, tmp: Path) -> tuple[Path, Path]:
    return give_export_key(site, tmp / "keys")


def _export(site: FailoverSite, tmp: Path, camera: str, from_: str, to: str, out: Path,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    token_file = tmp / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    urls = ",".join(f"http://127.0.0.1:{n.port}" for n in site.nodes.values())
    capsys.readouterr()
    code = cli_main(["export", camera, "--from", from_, "--to", to, "-o", str(out),
                     "--node", urls, "--token-file", str(token_file), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _verify(clip: Path, manifest: Path, key: Path, capsys: pytest.CaptureFixture[str],
            ) -> tuple[int, str]:
    capsys.readouterr()
    code = cli_main(["export", "verify", str(clip), str(manifest), "--key", str(key)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _clip_frame_numbers(clip: Path) -> list[int]:
    numbers: list[int] = []
    with av.open(str(clip)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                numbers += [t.frame_no for t in find_tags(bytes(packet))]
    return numbers


def _wall_errors_us(clip: Path, doc: dict[str, Any]) -> list[int]:
    """Per frame, the manifest's wall time minus the capture time the camera wrote into it."""
    tagged: list[tuple[int, int]] = []
    with av.open(str(clip)) as container:
        for packet in container.demux(container.streams.video[0]):
            tags = find_tags(bytes(packet)) if packet.size else []
            if tags:
                tagged.append((int(packet.pts), tags[0].capture_wall_us))
    walls: list[int] = []
    for piece in doc["pieces"]:
        at = piece["first_frame_wall_us"]
        for duration in decode_runs(piece["frame_durations"]):
            walls.append(at)
            at += duration * 1_000_000 // 90_000
    captured = [c for _, c in sorted(tagged)]
    assert len(captured) == len(walls)
    return [w - c for w, c in zip(walls, captured, strict=True)]


def _manifest(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


@pytest.mark.slow
def test_export_verify_and_tampering(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 1}, spares=[]) as site:
        _private, public = _keys(site, tmp_path)
        site.start_all()
        camera = "rec-1-c1"
        begin = now_us()
        time.sleep(5.0)
        end = now_us()
        clip, manifest = tmp_path / "clip.mp4", tmp_path / "clip.manifest.json"
        code, out = _export(site, tmp_path, camera, str(begin), str(end), clip, capsys)
        assert code == 0, out
        doc = _manifest(manifest)
        assert doc["camera"] == camera and doc["site_id"] == site.site_id
        assert doc["pieces"] and all(p["recorded_by"] == "rec-1" for p in doc["pieces"])
        assert all(p["source_sha256"] and len(p["source_sha256"]) == 64 for p in doc["pieces"])
        frames = _clip_frame_numbers(clip)
        assert len(frames) == doc["clip"]["frame_count"] >= 30
        assert len(set(frames)) == len(frames), "a frame twice in the clip"
        # The clip is exactly what the site playlist serves for the same range (the newest
        # segment may have been stored since the export).
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            served = playlist_frames(client, f"http://127.0.0.1:{site.nodes['rec-1'].port}"
                                     f"/api/v1/site/cameras/{camera}/playback.m3u8"
                                     f"?from={begin}&to={end}")
        newer = served.numbers()[len(frames):]
        assert served.numbers()[:len(frames)] == frames and all(n > frames[-1] for n in newer)
        # Each frame's wall time, recomputed from the manifest, is when the camera captured it
        # (within one frame period: 100 ms at the site's 10 fps).
        errors = _wall_errors_us(clip, doc)
        with capsys.disabled():
            print(f"\nmanifest wall time - capture time: {min(errors)} .. {max(errors)} µs")
        assert max(abs(e) for e in errors) < 100_000, (min(errors), max(errors))

        code, out = _verify(clip, manifest, public, capsys)
        assert code == 0 and out.startswith("OK:"), out

        # One byte of the clip flipped: the hash check refuses it.
        bad_clip = tmp_path / "bad.mp4"
        data = bytearray(clip.read_bytes())
        data[len(data) // 2] ^= 0x01
        bad_clip.write_bytes(bytes(data))
        code, out = _verify(bad_clip, manifest, public, capsys)
        assert code == 1 and "clip hash" in out, out

        # A frame time changed in the manifest: the signature refuses it.
        altered = _manifest(manifest)
        runs = altered["pieces"][0]["frame_durations"]
        runs[0][0] += 1
        bad_manifest = tmp_path / "bad.manifest.json"
        bad_manifest.write_text(json.dumps(altered), encoding="utf-8")
        code, out = _verify(clip, bad_manifest, public, capsys)
        assert code == 1 and "signature" in out, out
        # ... and a changed clip hash too.
        altered = _manifest(manifest)
        altered["clip"]["sha256"] = "0" * 64
        bad_manifest.write_text(json.dumps(altered), encoding="utf-8")
        code, out = _verify(clip, bad_manifest, public, capsys)
        assert code == 1 and "signature" in out, out

        # A key the verifier holds for another site: refused, whatever the manifest claims.
        assert cli_main(["export", "keygen", str(tmp_path / "other")]) == 0
        code, out = _verify(clip, manifest, tmp_path / "other" / "export-signing.pub", capsys)
        assert code == 1 and "signed by another key" in out, out

        # Bad input: a clear error and no file left behind.
        for from_, to, want in [
            (str(end), str(begin), "is not after --from"),
            (str(begin - 25 * 3600 * 1_000_000), str(end), "range_too_large"),
        ]:
            out_path = tmp_path / "refused.mp4"
            code, out = _export(site, tmp_path, camera, from_, to, out_path, capsys)
            assert code != 0 and want in out, out
            assert not list(tmp_path.glob("*refused*")), list(tmp_path.glob("*refused*"))
        code, out = _export(site, tmp_path, "no-such-cam", str(begin), str(end),
                            tmp_path / "refused.mp4", capsys)
        assert code != 0 and "unknown_camera" in out, out
        # An existing file is never overwritten.
        code, out = _export(site, tmp_path, camera, str(begin), str(end), clip, capsys)
        assert code == 2 and "refusing to overwrite" in out, out
        assert not list(tmp_path.glob("*refused*")) and not list(tmp_path.glob(".*.part"))


@pytest.mark.slow
def test_export_across_failover(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The spare's buffer, not yet re-inserted, is in the clip (recorded_by the spare); while the
    server is down its video is a gap that says the server did not answer."""
    with FailoverSite(tmp_path, servers={"rec-1": 1}, spares=["spare-1"],
                      reinsert_bytes_per_second=10_000) as site:
        _private, public = _keys(site, tmp_path)
        site.start_all()
        camera = "rec-1-c1"
        begin = now_us()
        time.sleep(3.0)
        site.node("rec-1").kill()
        site.wait_event("recording", "rec-1", timeout=20)
        time.sleep(3.0)
        # The master is down: the spare serves the site API; rec-1's video is unreachable.
        during = tmp_path / "during.mp4"
        code, out = _export(site, tmp_path, camera, str(begin), str(now_us()), during, capsys)
        assert code == 0, out
        doc = _manifest(tmp_path / "during.manifest.json")
        assert doc["exported_by"] == "spare-1"
        assert {p["recorded_by"] for p in doc["pieces"]} == {"spare-1"}
        assert any(g["cause"] == "node_not_answering" and "rec-1" in g["detail"]
                   for g in doc["gaps"]), doc["gaps"]
        assert _verify(during, tmp_path / "during.manifest.json", public, capsys)[0] == 0

        restart = now_us()
        site.start("rec-1")
        site.wait_event("handback", "rec-1", timeout=30, after_us=restart)
        time.sleep(2.0)
        pending = site.get(layout.reinsert("rec-1", "spare-1"))
        after = tmp_path / "after.mp4"
        end = now_us()
        code, out = _export(site, tmp_path, camera, str(begin), str(end), after, capsys)
        assert code == 0, out
        doc = _manifest(tmp_path / "after.manifest.json")
        by = {p["recorded_by"] for p in doc["pieces"]}
        assert by == {"rec-1", "spare-1"}, (by, pending)
        assert any(p["recorded_by"] == "spare-1" and p["node"] == "spare-1"
                   for p in doc["pieces"]), "no piece served from the spare's buffer"
        frames = _clip_frame_numbers(after)
        assert len(frames) == sum(len(decode_runs(p["frame_durations"]))
                                  for p in doc["pieces"])
        # The same frames a player gets from the site playlist (re-insert may have moved a
        # piece since, not its frames); by now the newest segment may be stored too.
        master = doc["exported_by"]
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            served = playlist_frames(client, f"http://127.0.0.1:{site.nodes[master].port}"
                                     f"/api/v1/site/cameras/{camera}/playback.m3u8"
                                     f"?from={begin}&to={end}")
        newer = served.numbers()[len(frames):]
        assert served.numbers()[:len(frames)] == frames and all(n > frames[-1] for n in newer)
        with capsys.disabled():
            print("\npieces (node, recorded_by, frames)",
                  [(p["node"], p["recorded_by"], p["frame_count"]) for p in doc["pieces"]])
            print("gaps", [(g["cause"], g["length_us"]) for g in doc["gaps"]])
            print("frames twice in the clip", len(frames) - len(set(frames)))
            errors = _wall_errors_us(after, doc)
            print(f"manifest wall time - capture time: {min(errors)} .. {max(errors)} µs")
        assert max(abs(e) for e in errors) < 100_000, (min(errors), max(errors))
        code, out = _verify(after, tmp_path / "after.manifest.json", public, capsys)
        assert code == 0, out
        wait_for("rec-1 alive", lambda: site.alive("rec-1"), 10)
