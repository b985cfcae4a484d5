"""Re-insert into a store: verification, idempotence, the overlap rule, all-or-nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from hotspare.store import importer, mp4
from hotspare.store.importer import ImportMeta, ImportRejected
from hotspare.store.models import RunInfo, SegmentInfo, WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import record_segment

T0 = 1_700_000_000_000_000
FRAME_US = 40_000


@pytest.fixture
def origin(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SegmentStore.open(tmp_path / "rs1", "rs1")
    yield s
    s.close()


@pytest.fixture
def spare(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SegmentStore.open(tmp_path / "spare1", "spare1")
    yield s
    s.close()


def _spare_segment(spare: SegmentStore, anchor: int = T0, frames: int = 10,
                   seq: int = 0, start_media: int = 0,
                   run: RunInfo | None = None) -> tuple[ImportMeta, Path, SegmentInfo]:
    run = run or spare.begin_run("cam1", "rs1", anchor, WallSource.CAMERA)
    seg = record_segment(spare, run, seq, start_media, frames)
    got = spare.get_run(run.run_id)
    assert got is not None
    return ImportMeta.from_segment(seg, got), spare.segment_file(seg), seg


def _state(store: SegmentStore) -> tuple[int, list[str], list[str]]:
    conn = sqlite3.connect(store.root / "index.sqlite3")
    n = conn.execute("select count(*) from segment").fetchone()[0]
    conn.close()
    files = sorted(p.relative_to(store.root).as_posix()
                   for p in (store.root / "segments").rglob("*") if p.is_file())
    incoming = sorted(p.name for p in (store.root / "incoming").iterdir())
    return n, files, incoming


def test_import_then_again_gives_one_row(origin: SegmentStore, spare: SegmentStore) -> None:
    meta, data, seg = _spare_segment(spare)
    first = origin.import_segment(meta, data)
    assert first.status == "inserted" and first.segment is not None
    stored = first.segment
    assert (stored.recorded_by, stored.recorded_as) == ("spare1", "rs1")
    assert stored.imported_from == "spare1"
    assert stored.sha256 == seg.sha256 and stored.start_wall_us == seg.start_wall_us
    assert not stored.reinsert_pending
    assert origin.segment_file(stored).read_bytes() == data.read_bytes()
    run = origin.get_run(meta.run_id)
    assert run is not None and run.end_reason == "imported"
    assert run.ended_wall_us == stored.end_wall_us
    again = origin.import_segment(meta, data)
    assert again.status == "duplicate" and again.segment == stored
    assert _state(origin)[0] == 1
    # same bytes under another seq: still one row (idempotent on the hash too)
    other = dataclasses.replace(meta, seq=7)
    assert origin.import_segment(other, data).status == "duplicate"
    assert _state(origin) == (1, [stored.relpath], [])
    # survives a restart: reconcile leaves imported runs and rows alone
    origin.close()
    with SegmentStore.open(origin.root, "rs1") as again_open:
        assert again_open.last_reconcile is not None and again_open.last_reconcile.clean


def test_equal_bytes_of_another_camera_or_time_are_not_a_duplicate(
        origin: SegmentStore, spare: SegmentStore) -> None:
    """Identical files (a lens cap: black frames) from another camera, or from the same camera at
    another time, are new video: answering "duplicate" would let the sender delete the only copy."""
    meta, data, _ = _spare_segment(spare)
    assert origin.import_segment(meta, data).status == "inserted"
    other_camera = dataclasses.replace(meta, camera_id="cam2", run_id=meta.run_id + "b")
    result = origin.import_segment(other_camera, data)
    assert result.status == "inserted", result
    assert result.segment is not None and result.segment.camera_id == "cam2"
    later = dataclasses.replace(meta, run_id=meta.run_id + "c",
                                start_wall_us=meta.start_wall_us + 60_000_000,
                                anchor_wall_us=meta.anchor_wall_us + 60_000_000)
    result = origin.import_segment(later, data)
    assert result.status == "inserted", result
    assert _state(origin)[0] == 3


def test_upload_staged_in_incoming_is_renamed(origin: SegmentStore, spare: SegmentStore) -> None:
    meta, data, _ = _spare_segment(spare)
    staged = origin.incoming_path()
    staged.write_bytes(data.read_bytes())
    assert origin.import_segment(meta, staged).status == "inserted"
    assert not staged.exists()


def test_received_hash_is_trusted_only_for_a_staged_upload(
        origin: SegmentStore, spare: SegmentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's already-computed hash and fsync are not redone for its own staged file; a file
    the importer copies (not staged by the caller) is hashed and synced again regardless."""
    from hotspare.store import layout

    meta, data, seg = _spare_segment(spare)
    meta2, data2, seg2 = _spare_segment(spare, seq=1, start_media=36_000)
    hashed: list[Path] = []
    synced: list[Path] = []
    real_sha, real_sync = layout.sha256_file, layout.fsync_file
    monkeypatch.setattr(layout, "sha256_file",
                        lambda path, limit=None: hashed.append(path) or real_sha(path, limit))
    monkeypatch.setattr(layout, "fsync_file", lambda path: synced.append(path) or real_sync(path))
    staged = origin.incoming_path()
    staged.write_bytes(data.read_bytes())
    done = importer.Received(sha256=seg.sha256, synced=True)
    assert origin.import_segment(meta, staged, received=done).status == "inserted"
    assert hashed == [] and synced == []
    claimed = importer.Received(sha256=seg2.sha256, synced=True)
    assert origin.import_segment(meta2, data2, received=claimed).status == "inserted"
    assert len(hashed) == 1 and len(synced) == 1  # a copy: its own bytes, checked and synced


def test_received_hash_must_still_match_the_metadata(origin: SegmentStore,
                                                     spare: SegmentStore) -> None:
    meta, data, _ = _spare_segment(spare)
    staged = origin.incoming_path()
    staged.write_bytes(data.read_bytes())
    before = _state(origin)
    with pytest.raises(ImportRejected, match="SHA-256 mismatch"):
        origin.import_segment(meta, staged, received=importer.Received("0" * 64, synced=True))
    after = _state(origin)
    assert after[:2] == before[:2] == (0, [])  # no row, nothing in segments/
    staged.unlink()  # the caller's file: the API removes it (routes_import's finally)


def _rejected(origin: SegmentStore, meta: ImportMeta, data: Path, status: int, match: str,
              **kw: object) -> None:
    before = _state(origin)
    with pytest.raises(ImportRejected, match=match) as e:
        origin.import_segment(meta, data, **kw)  # type: ignore[arg-type]
    assert e.value.status == status
    assert e.value.reason
    assert _state(origin) == before == (0, [], [])


def test_bad_hash(origin: SegmentStore, spare: SegmentStore) -> None:
    meta, data, _ = _spare_segment(spare)
    _rejected(origin, dataclasses.replace(meta, sha256="0" * 64), data, 422, "SHA-256 mismatch")


def test_truncated_file(origin: SegmentStore, spare: SegmentStore, tmp_path: Path) -> None:
    meta, data, _ = _spare_segment(spare)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data.read_bytes()[:-20])
    _rejected(origin, meta, cut, 422, "SHA-256 mismatch")
    # even with a hash that matches the cut bytes, the boxes give it away
    sha = hashlib.sha256(cut.read_bytes()).hexdigest()
    _rejected(origin, dataclasses.replace(meta, sha256=sha), cut, 422, "incomplete")


@pytest.mark.parametrize("field,value", [("run_id", "../../etc"), ("camera_id", "cam1/../x"),
                                         ("recorded_by", "..\\evil"), ("recorded_as", "")])
def test_path_like_ids(origin: SegmentStore, spare: SegmentStore, field: str, value: str) -> None:
    meta, data, _ = _spare_segment(spare)
    bad = dataclasses.replace(meta, **{field: value})  # type: ignore[arg-type]
    _rejected(origin, bad, data, 400, "not a valid id")


def test_mismatched_metadata(origin: SegmentStore, spare: SegmentStore) -> None:
    meta, data, _ = _spare_segment(spare)
    _rejected(origin, dataclasses.replace(meta, frame_count=11), data, 422, "frame_count mismatch")
    _rejected(origin, dataclasses.replace(meta, duration_90k=3600), data, 422, "duration_90k")
    _rejected(origin, dataclasses.replace(meta, init_bytes=10), data, 422, "init_bytes")
    _rejected(origin, dataclasses.replace(meta, start_wall_us=meta.start_wall_us + 5000), data,
              400, "does not match anchor")


def test_unknown_camera_and_own_recordings(origin: SegmentStore, spare: SegmentStore) -> None:
    meta, data, _ = _spare_segment(spare)
    _rejected(origin, meta, data, 404, "unknown camera", known_camera=lambda c: c == "cam2")
    _rejected(origin, dataclasses.replace(meta, recorded_by="rs1"), data, 409, "own recordings")


def test_same_run_and_seq_with_other_content_conflicts(origin: SegmentStore,
                                                       spare: SegmentStore) -> None:
    meta, data, _ = _spare_segment(spare)
    origin.import_segment(meta, data)
    meta2, data2, _ = _spare_segment(spare, anchor=T0 + 10**8, frames=5)
    with pytest.raises(ImportRejected) as e:
        origin.import_segment(dataclasses.replace(meta2, run_id=meta.run_id, seq=0,
                                                  anchor_wall_us=meta.anchor_wall_us,
                                                  start_wall_us=meta.start_wall_us), data2)
    assert e.value.status == 409


def test_failure_while_indexing_leaves_nothing(origin: SegmentStore, spare: SegmentStore,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    meta, data, _ = _spare_segment(spare)

    def boom(*a: object, **k: object) -> SegmentInfo:
        raise OSError("disk on fire")

    monkeypatch.setattr(importer, "insert_segment", boom)
    with pytest.raises(OSError):
        origin.import_segment(meta, data)
    assert _state(origin) == (0, [], [])
    assert origin.get_run(meta.run_id) is None


# ---------------------------------------------------------------- overlap rule
# The origin recorded cam1 from T0 for 1.2 s (3 segments of 10 frames); wall times of both servers
# come from the camera's RTCP clock, so the spare's frames fall on the same 40 ms grid.


def _origin_recording(origin: SegmentStore) -> None:
    run = origin.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    for seq in range(3):
        record_segment(origin, run, seq, seq * 36_000, 10)
    origin.end_run(run.run_id, T0 + 1_200_000, "stopped")


def test_fully_covered_segment_is_a_duplicate(origin: SegmentStore, spare: SegmentStore) -> None:
    _origin_recording(origin)
    meta, data, _ = _spare_segment(spare, anchor=T0 + 200_000, frames=20)  # T0+0.2 .. T0+1.0
    res = origin.import_segment(meta, data)
    assert res.status == "duplicate" and res.segment is None
    assert len(res.covered_by) == 3
    assert _state(origin)[0] == 3


def test_partly_covered_segment_skips_its_covered_head(origin: SegmentStore,
                                                       spare: SegmentStore) -> None:
    _origin_recording(origin)
    # the spare started 0.8 s after T0 and recorded 0.8 s: first 10 frames already at the origin
    meta, data, _ = _spare_segment(spare, anchor=T0 + 800_000, frames=20)
    res = origin.import_segment(meta, data)
    assert res.status == "trimmed" and res.segment is not None
    seg = res.segment
    assert (seg.head_skip_frames, seg.tail_skip_frames, seg.recorded_frames) == (10, 0, 10)
    assert seg.recorded_start_wall_us == T0 + 1_200_000
    tl = origin.timeline("cam1", T0, T0 + 1_600_000)
    assert tl.gaps == []
    assert sum(sp.frame_count for sp in tl.spans) == 40  # every frame once


def test_partly_covered_segment_skips_its_covered_tail(origin: SegmentStore,
                                                       spare: SegmentStore) -> None:
    _origin_recording(origin)
    meta, data, _ = _spare_segment(spare, anchor=T0 - 400_000, frames=15)  # T0-0.4 .. T0+0.2
    res = origin.import_segment(meta, data)
    assert res.status == "trimmed" and res.segment is not None
    assert (res.segment.head_skip_frames, res.segment.tail_skip_frames) == (0, 5)
    assert res.segment.recorded_end_wall_us == T0
    tl = origin.timeline("cam1", T0 - 400_000, T0 + 1_200_000)
    assert tl.gaps == [] and sum(sp.frame_count for sp in tl.spans) == 40


def test_sub_frame_clock_difference_still_lines_up(origin: SegmentStore,
                                                   spare: SegmentStore) -> None:
    _origin_recording(origin)
    # RTCP-derived anchors agree within a fraction of a millisecond, not exactly
    meta, data, _ = _spare_segment(spare, anchor=T0 + 800_000 + 300, frames=20)
    res = origin.import_segment(meta, data)
    assert res.segment is not None and res.segment.head_skip_frames == 10


def test_local_clock_segments_are_never_trimmed(origin: SegmentStore,
                                                spare: SegmentStore) -> None:
    _origin_recording(origin)
    run = spare.begin_run("cam1", "rs1", T0 + 800_000, WallSource.LOCAL)
    meta, data, _ = _spare_segment(spare, frames=20, run=run)
    res = origin.import_segment(meta, data)
    assert res.status == "inserted" and res.segment is not None
    assert res.segment.head_skip_frames == 0


def test_meta_round_trips_through_the_wire_form(spare: SegmentStore) -> None:
    """The header a sender builds reads back, on the receiver, as the very metadata it came from,
    and a wrongly typed or unknown field is refused before the store sees it."""
    from pydantic import ValidationError

    from hotspare.wire import ImportMetaIn

    meta, _, seg = _spare_segment(spare)
    run = spare.get_run(seg.run_id)
    assert run is not None
    header = ImportMetaIn.of(seg, run).model_dump_json()
    assert ImportMetaIn.model_validate_json(header).to_store(seg.camera_id) == meta
    sent = json.loads(header)
    for broken in (sent | {"frame_count": "ten"}, sent | {"extra": 1}):
        with pytest.raises(ValidationError):
            ImportMetaIn.model_validate_json(json.dumps(broken))


def test_import_restores_a_missing_file(origin: SegmentStore, spare: SegmentStore) -> None:
    meta, data, _ = _spare_segment(spare)
    stored = origin.import_segment(meta, data).segment
    assert stored is not None
    origin.segment_file(stored).unlink()
    root = origin.root
    origin.close()
    with SegmentStore.open(root, "rs1") as again:
        assert again.list_segments("cam1", 0, 2**62) == []  # marked missing
        # the sender must not be told "duplicate" for video whose file is gone
        res = again.import_segment(meta, data)
        assert res.status == "inserted" and res.segment is not None
        assert res.segment.file_problem is None
        assert again.segment_file(res.segment).read_bytes() == data.read_bytes()
        assert len(again.list_segments("cam1", 0, 2**62)) == 1


def test_frames_in_a_hole_of_a_stored_segment_are_not_held(origin: SegmentStore,
                                                             spare: SegmentStore) -> None:
    """A recorder frozen (SIGSTOP) while its camera dropped the backlog keeps one segment across
    the hole; the spare's recording of the hole must be stored, not judged already held."""
    run = origin.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    step = 90_000 // 25
    # Origin holds frames 0-9, then (a hole of 10 frames) frames 20-29 of camera time.
    record_segment(origin, run, 0, 0, 20, gop=5, hole=(10, 10 * step))
    meta, data, _ = _spare_segment(spare, frames=30)
    result = origin.import_segment(meta, data)
    assert result.status == "trimmed", result
    assert result.segment is not None
    assert (result.segment.head_skip_frames, result.segment.tail_skip_frames) == (10, 10)


@pytest.mark.parametrize("spare_offset_us", [-3, 0, 3])
def test_the_frame_after_a_hole_is_not_held_by_the_frame_before_it(
        origin: SegmentStore, spare: SegmentStore, spare_offset_us: int) -> None:
    """The last frame before a hole in a stored segment lasts, in its file, until the frame after
    the hole; it holds at most a little over one frame. At 1.5 frames the spare's first frame of
    the hole had its midpoint on the boundary, so a spare anchored a few µs earlier than the
    original (RTCP mappings agree only that well) lost it to the trim (chaos soak, vanished
    host)."""
    run = origin.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    step = 90_000 // 25
    record_segment(origin, run, 0, 0, 20, gop=5, hole=(10, 10 * step))
    meta, data, _ = _spare_segment(spare, anchor=T0 + spare_offset_us, frames=30)
    result = origin.import_segment(meta, data)
    assert result.status == "trimmed", result
    assert result.segment is not None
    assert (result.segment.head_skip_frames, result.segment.tail_skip_frames) == (10, 10)


def test_a_segment_committed_lately_is_not_parsed_again(origin: SegmentStore,
                                                        spare: SegmentStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The overlap check runs under the index writer: the origin's own segments, just committed,
    are judged from the frame times their commit walked (`frame_cache`), the same as a parse."""
    _origin_recording(origin)
    parsed: list[Path] = []
    real = mp4.parse_path
    monkeypatch.setattr(mp4, "parse_path", lambda path: parsed.append(path) or real(path))
    meta, data, _ = _spare_segment(spare, anchor=T0 + 800_000, frames=20)
    res = origin.import_segment(meta, data)
    assert res.status == "trimmed" and res.segment is not None
    assert (res.segment.head_skip_frames, res.segment.tail_skip_frames) == (10, 0)
    assert not [p for p in parsed if p.is_relative_to(origin.root / "segments")], parsed


def test_a_cached_segment_whose_file_is_gone_holds_nothing(origin: SegmentStore,
                                                          spare: SegmentStore) -> None:
    """Retention frees a file before its row: until the row goes, the file's frames are not
    counted as held, cached or not (the import then stores them: a duplicate at worst)."""
    _origin_recording(origin)
    for seg in origin.list_segments("cam1", T0, T0 + 1_200_000):
        origin.segment_file(seg).unlink()
    meta, data, _ = _spare_segment(spare, anchor=T0 + 200_000, frames=20)
    res = origin.import_segment(meta, data)
    assert res.status == "inserted", res
