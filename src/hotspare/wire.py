"""What nodes, the client and failover exchange over HTTP: the node API's bodies, with units.

These are the wire format, deliberately separate from the store's dataclasses: the store may grow
columns without changing what peers and clients see, and the OpenAPI spec documents every unit.
The module sits below `hotspare.api` (which serves them), `hotspare.client` (which parses them)
and `hotspare.failover` (which sends re-inserts and reads health), so none of those imports another
for a shape; it imports no FastAPI, keeping the CLI quick to start. Each conversion between a
store value and its wire form is here and nowhere else (`of` from the store, `to_*` back), so a
field added on one side cannot be forgotten on the other by a second copy of the mapping.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hotspare.config.models import ID_PATTERN
from hotspare.store.importer import ImportMeta
from hotspare.store.models import RunInfo, SegmentInfo, WallSource
from hotspare.store.timeline import Gap, Timeline, TimelineSpan

API_PREFIX = "/api/v1"
META_HEADER = "Hotspare-Segment-Meta"
KEEP_ALIVE_SECONDS = 20
"""How long a node keeps an idle HTTP connection open (uvicorn's default is 5 s). A spare watches
its idle probe connections to learn of a dead process at once (`failover/probe_watch`); it can
watch one only while both ends keep it, and on a large site a spare's probe round over its share
took up to 8 s (200 servers, a saturated host): with connections let go after 2 s idle a server
was unwatched for part of each round and its crash waited for the next probe (crash → claim 3.1
and 3.7 s instead of 0.2–0.7 s). The spare's side is `failover.probe.IDLE_REUSE_SECONDS`. An idle
connection costs the node a socket and a few kB."""

# ---------------------------------------------------------------- read limits (docs/api.md)
# One place for what a read may cost, so the server, the client paging through it, the CLI and the
# spec cannot disagree (docs/api.md, "Read limits"). Before them, a viewer asking 30 days of one
# camera (648 000 segments) cost a node 8 s and 0.8 GB for the list, 12 s and 1.2 GB for the
# playlist (bench/reads). Each answer is bounded by a row cap applied in SQL; the range caps say
# early and clearly what to ask instead.
HOUR_US = 3_600_000_000
# Segment lists and playlists: a day per request, a day of one camera at 4 s segments being 21 600.
MAX_SEGMENT_RANGE_US = 24 * HOUR_US
# Timeline and runs summarise: their answer is small, but the node still reads every segment row
# in the range (about 2 µs each): a week is 151 200 rows at 4 s segments, 0.37 s.
MAX_SUMMARY_RANGE_US = 7 * 24 * HOUR_US
# Rows per page of `/segments` and `/runs` (the `limit` maximum, and its default).
MAX_PAGE_ROWS = 10_000
# Segments in one VOD playlist: a day at 4 s (21 600) fits; shorter segments are cut here with a
# continuation (`Hotspare-Next-From`). About 250 bytes of playlist each: at most ~6 MB.
MAX_PLAYLIST_SEGMENTS = 25_000
# The multi-camera segment listing (`GET /segments?camera=…`): a spare's gap repair asks a server
# once a second for every camera it pre-buffers there. Cameras per request, rows per camera and
# range are all capped, for every credential, so one request costs at most 256 × 1 000 rows.
MAX_LIST_CAMERAS = 256
MAX_LIST_CAMERA_ROWS = 1_000
MAX_LIST_RANGE_US = HOUR_US
# Segment rows one timeline answer summarises, and runs it lists; past either it is cut at a time
# and says where to continue (`next_from_wall_us`). 200 000 is about a week of 3 s segments.
MAX_TIMELINE_SEGMENTS = 200_000
MAX_TIMELINE_RUNS = 10_000
RANGE_TOO_LARGE = "range_too_large"
NEXT_FROM_HEADER = "Hotspare-Next-From"


def describe_us(us: int) -> str:
    """A limit as people say it (`24 h`, `7 d`), for refusals and docs."""
    if us % (24 * HOUR_US) == 0 and us > 24 * HOUR_US:
        return f"{us // (24 * HOUR_US)} d"
    if us % HOUR_US == 0:
        return f"{us // HOUR_US} h"
    if us >= HOUR_US:
        return f"{us / HOUR_US:.1f} h"
    return f"{us / 1_000_000:g} s"


def segment_cursor(start_wall_us: int, segment_id: int) -> str:
    """The `after` of the next segment page: the sort key of the last row given (`api.params`)."""
    return f"{start_wall_us}:{segment_id}"


def run_cursor(started_wall_us: int, run_id: str) -> str:
    return f"{started_wall_us}:{run_id}"


SEGMENT_CURSOR_PATTERN = r"^[0-9]{1,19}:[0-9]{1,19}$"
RUN_CURSOR_PATTERN = r"^[0-9]{1,19}:[a-z0-9][a-z0-9_-]{0,62}$"


class Problem(BaseModel):
    """The body of every error response (see `hotspare.api.problems`, which answers with it)."""

    error: str = Field(
        description="stable machine-readable code, e.g. `unknown_camera`, `hash_mismatch`"
    )
    detail: str = Field(description="what went wrong and what to do about it, for an operator")


CameraState = Literal["recording", "connecting", "failing"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class CameraHealthOut(_Out):
    camera_id: str = Field(description="camera id as configured")
    state: CameraState = Field(
        description="`recording` once frames are being committed; `connecting` "
        "while (re)connecting; `failing` after repeated errors"
    )
    last_frame_wall_us: int | None = Field(
        default=None, description="wall time of the last frame received, µs since the epoch (UTC)"
    )
    last_commit_wall_us: int | None = Field(
        default=None,
        description="wall time of the last committed segment, µs since the epoch (UTC)",
    )
    run_id: str | None = Field(default=None, description="the run being recorded, if any")
    error: str | None = Field(default=None, description="last error, for the operator")


class HealthOut(_Out):
    server_name: str = Field(
        description="the node answering (the machine, not the identity it records as)"
    )
    ok: bool = Field(
        description="true only when every camera is `recording`; "
        "the answer is HTTP 200 even when false"
    )
    cameras: list[CameraHealthOut] = Field(
        description="one entry per camera this node should record"
    )
    checked_wall_us: int = Field(description="when this answer was made, µs since the epoch (UTC)")
    error: str | None = Field(
        default=None, description="why health could not be read at all, if so"
    )


class SegmentOut(_Out):
    segment_id: int = Field(description="index row id on this node")
    camera_id: str
    run_id: str
    seq: int = Field(description="position of the segment in its run, from 0")
    recorded_by: str = Field(description="the machine that wrote the segment")
    recorded_as: str = Field(description="the recording server identity it was recorded for")
    start_wall_us: int = Field(description="wall time of the first frame, µs since the epoch (UTC)")
    end_wall_us: int = Field(
        description="wall time just after the last frame, µs since the epoch (UTC)"
    )
    start_media_90k: int = Field(
        description="media time of the first frame, 90 kHz ticks since the run's first frame"
    )
    duration_90k: int = Field(description="duration, 90 kHz ticks")
    frame_count: int = Field(description="video frames in the file")
    head_skip_frames: int = Field(
        description="leading frames to skip on playback (duplicates of an earlier segment)"
    )
    tail_skip_frames: int = Field(
        default=0, description="trailing frames to skip on playback (duplicates of a later segment)"
    )
    bytes: int = Field(description="file size, bytes")
    init_bytes: int = Field(
        description="size of the fMP4 init section (ftyp+moov) at the start of the file, bytes"
    )
    sha256: str = Field(description="SHA-256 of the whole file, lower-case hex")
    reinsert_pending: bool = Field(
        description="the segment still awaits re-insert into its own server"
    )
    imported_from: str | None = Field(
        default=None, description="the node it was re-inserted from, if imported"
    )

    @classmethod
    def of(cls, segment: SegmentInfo) -> SegmentOut:
        return cls(
            segment_id=segment.segment_id,
            camera_id=segment.camera_id,
            run_id=segment.run_id,
            seq=segment.seq,
            recorded_by=segment.recorded_by,
            recorded_as=segment.recorded_as,
            start_wall_us=segment.start_wall_us,
            end_wall_us=segment.end_wall_us,
            start_media_90k=segment.start_media_90k,
            duration_90k=segment.duration_90k,
            frame_count=segment.frame_count,
            head_skip_frames=segment.head_skip_frames,
            tail_skip_frames=segment.tail_skip_frames,
            bytes=segment.bytes,
            init_bytes=segment.init_bytes,
            sha256=segment.sha256,
            reinsert_pending=segment.reinsert_pending,
            imported_from=segment.imported_from,
        )

    def to_info(self) -> SegmentInfo:
        """The store's value type of another node's segment, so that node-local code (the HLS
        playlist writer) serves it unchanged. What the wire does not carry stays at its default:
        no `relpath` (the file is on the other node) and skipped frames' durations of 0."""
        return SegmentInfo(
            segment_id=self.segment_id, camera_id=self.camera_id, run_id=self.run_id,
            seq=self.seq, recorded_by=self.recorded_by, recorded_as=self.recorded_as,
            start_wall_us=self.start_wall_us, start_media_90k=self.start_media_90k,
            duration_90k=self.duration_90k, frame_count=self.frame_count,
            head_skip_frames=self.head_skip_frames, bytes=self.bytes, init_bytes=self.init_bytes,
            sha256=self.sha256, relpath="", reinsert_pending=self.reinsert_pending,
            imported_from=self.imported_from, tail_skip_frames=self.tail_skip_frames,
        )


class SegmentList(_Out):
    camera_id: str
    from_wall_us: int = Field(description="start of the asked range, µs since the epoch (UTC)")
    to_wall_us: int = Field(description="end of the asked range, µs since the epoch (UTC)")
    segments: list[SegmentOut] = Field(description="segments overlapping the range, oldest first")
    truncated: bool = Field(
        description="true when more segments matched than `limit`: ask again with `after` = `next`"
    )
    next: str | None = Field(
        default=None,
        description="pass as `after` (same `from`, `to`) for the next page; null on the last page",
    )


class SegmentLists(_Out):
    from_wall_us: int = Field(description="start of the asked range, µs since the epoch (UTC)")
    to_wall_us: int = Field(description="end of the asked range, µs since the epoch (UTC)")
    cameras: list[SegmentList] = Field(
        description="one list per asked camera, in the order asked; a list that is `truncated` "
        "continues with `GET /cameras/{camera}/segments?after=` its `next`"
    )


class RunOut(_Out):
    run_id: str
    camera_id: str
    recorded_by: str = Field(description="the machine that recorded the run")
    recorded_as: str = Field(description="the recording server identity it was recorded for")
    anchor_wall_us: int = Field(
        description="wall time of media time 0 of the run, µs since the epoch (UTC)"
    )
    wall_source: Literal["camera", "local"] = Field(
        description="`camera`: from RTCP sender reports; `local`: the recorder's clock"
    )
    started_wall_us: int = Field(description="µs since the epoch (UTC)")
    ended_wall_us: int | None = Field(
        default=None, description="µs since the epoch (UTC); null while recording"
    )
    end_reason: str | None = None

    @classmethod
    def of(cls, run: RunInfo) -> RunOut:
        return cls(
            run_id=run.run_id,
            camera_id=run.camera_id,
            recorded_by=run.recorded_by,
            recorded_as=run.recorded_as,
            anchor_wall_us=run.anchor_wall_us,
            wall_source=run.wall_source.value,
            started_wall_us=run.started_wall_us,
            ended_wall_us=run.ended_wall_us,
            end_reason=run.end_reason,
        )


class RunList(_Out):
    camera_id: str
    from_wall_us: int
    to_wall_us: int
    runs: list[RunOut] = Field(description="runs overlapping the range, oldest first")
    truncated: bool = Field(
        default=False,
        description="true when more runs matched than `limit`: ask again with `after` = `next`",
    )
    next: str | None = Field(
        default=None,
        description="pass as `after` (same `from`, `to`) for the next page; null on the last page",
    )


class TimelineRunOut(_Out):
    """Consecutive segments of one run with no hole longer than `max_gap_us` between them."""

    run_id: str
    recorded_by: str = Field(description="the machine that recorded this stretch")
    recorded_as: str = Field(description="the recording server identity it was recorded for")
    start_wall_us: int = Field(description="first recorded frame, µs since the epoch (UTC)")
    end_wall_us: int = Field(
        description="just after the last recorded frame, µs since the epoch (UTC)"
    )
    segment_count: int
    frame_count: int = Field(description="frames recorded (skipped duplicate frames not counted)")

    @classmethod
    def of(cls, span: TimelineSpan) -> TimelineRunOut:
        return cls(run_id=span.run_id, recorded_by=span.recorded_by, recorded_as=span.recorded_as,
                   start_wall_us=span.start_wall_us, end_wall_us=span.end_wall_us,
                   segment_count=span.segment_count, frame_count=span.frame_count)


class GapOut(_Out):
    start_wall_us: int = Field(description="µs since the epoch (UTC)")
    end_wall_us: int = Field(description="µs since the epoch (UTC)")
    length_us: int = Field(description="end minus start, µs")

    @classmethod
    def of(cls, gap: Gap) -> GapOut:
        return cls(start_wall_us=gap.start_wall_us, end_wall_us=gap.end_wall_us,
                   length_us=gap.duration_us)


class TimelineOut(_Out):
    camera_id: str
    from_wall_us: int
    to_wall_us: int
    runs: list[TimelineRunOut] = Field(description="recorded stretches, oldest first")
    gaps: list[GapOut] = Field(description="stretches of the range with no video, oldest first")
    truncated: bool = Field(
        default=False,
        description="true when the range held more than one answer may summarise: runs and gaps "
        "are given up to `next_from_wall_us` only",
    )
    next_from_wall_us: int | None = Field(
        default=None,
        description="when truncated: ask again with `from` = this (same `to`) for the rest",
    )

    @classmethod
    def of(cls, timeline: Timeline) -> TimelineOut:
        """The store's timeline on the wire, where a span is called a run."""
        return cls(
            camera_id=timeline.camera_id,
            from_wall_us=timeline.from_wall_us,
            to_wall_us=timeline.to_wall_us,
            runs=[TimelineRunOut.of(s) for s in timeline.spans],
            gaps=[GapOut.of(g) for g in timeline.gaps],
            truncated=timeline.next_from_wall_us is not None,
            next_from_wall_us=timeline.next_from_wall_us,
        )


class HeldRunOut(TimelineRunOut):
    """A stretch of the site's timeline: a node's timeline run, and which node holds it."""

    held_by: str = Field(description="the node that holds this stretch's video now")
    held_by_url: str = Field(description="that node's API address, for its segment files")


class SourceOut(_Out):
    """One node asked for a site-wide answer, and whether it answered."""

    node: str
    url: str
    ok: bool = Field(description="false when the node did not answer or refused")
    error: str | None = Field(default=None, description="why not, for the operator")


class SiteTimelineOut(_Out):
    """A camera's timeline merged from every node that holds some of its video (the master's)."""

    camera_id: str
    server: str = Field(description="the recording server the camera belongs to")
    from_wall_us: int
    to_wall_us: int
    runs: list[HeldRunOut] = Field(description="recorded stretches, oldest first")
    gaps: list[GapOut] = Field(
        description="stretches of the range no answering node holds video of, oldest first"
    )
    sources: list[SourceOut] = Field(description="every node asked")
    partial: bool = Field(description="true when some node did not answer: gaps may be video")
    truncated: bool = Field(
        default=False,
        description="true when a node's or the merged answer was cut: runs and gaps are given up "
        "to `next_from_wall_us` only",
    )
    next_from_wall_us: int | None = Field(
        default=None,
        description="when truncated: ask again with `from` = this (same `to`) for the rest",
    )


class ImportOut(_Out):
    status: Literal["inserted", "duplicate", "trimmed"] = Field(
        description="`inserted`: stored; `trimmed`: stored, with leading/trailing frames this node "
        "already held marked as skipped; `duplicate`: already held, nothing changed"
    )
    segment: SegmentOut | None = Field(
        default=None,
        description="the row holding the segment; null when "
        "other segments already hold every frame",
    )
    covered_by: list[int] = Field(
        default_factory=list,
        description="ids of segments here that already held some of its frames",
    )
    message: str = Field(default="", description="what happened, for the operator")


_SHA256_PATTERN = r"^[0-9a-f]{64}$"
_MAX_US = 253_402_300_799_999_999


class ImportMetaIn(BaseModel):
    """The metadata header: the sender's index row of the segment plus its run's anchor.

    The camera is not here: it is the `{camera}` of the URL, so one field can't contradict another.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=ID_PATTERN, description="the run on the node that recorded it")
    seq: int = Field(ge=0, le=999_999_999, description="position in the run, from 0")
    recorded_by: str = Field(
        pattern=ID_PATTERN, description="the machine that recorded it (e.g. the spare)"
    )
    recorded_as: str = Field(pattern=ID_PATTERN, description="the identity it was recorded for")
    start_wall_us: int = Field(
        ge=0,
        le=_MAX_US,
        description="wall time of the first frame, µs since the epoch; "
        "must equal anchor_wall_us + start_media_90k",
    )
    start_media_90k: int = Field(
        ge=0,
        le=2**62,
        description="media time of the first frame, 90 kHz ticks since the run's first frame",
    )
    duration_90k: int = Field(ge=1, le=2**40, description="duration, 90 kHz ticks")
    frame_count: int = Field(ge=1, le=2**31, description="video frames in the file")
    init_bytes: int = Field(
        ge=1, le=2**50, description="size of the init section at the start of the file, bytes"
    )
    sha256: str = Field(
        pattern=_SHA256_PATTERN, description="SHA-256 of the whole file, lower-case hex"
    )
    anchor_wall_us: int = Field(
        ge=0, le=_MAX_US, description="wall time of the run's media time 0, µs since the epoch"
    )
    wall_source: Literal["camera", "local"] = Field(description="where the run's anchor came from")
    bytes: int = Field(ge=1, le=2**50, description="file size, bytes; must equal the body's length")

    @classmethod
    def of(cls, segment: SegmentInfo, run: RunInfo) -> ImportMetaIn:
        """What a sender (failover's re-insert) puts in the header for one of its segments.

        Goes through the store's own `ImportMeta.from_segment`, so which index fields describe a
        segment to its receiver is decided once, by the store that checks them.
        """
        meta = ImportMeta.from_segment(segment, run)
        return cls(
            run_id=meta.run_id,
            seq=meta.seq,
            recorded_by=meta.recorded_by,
            recorded_as=meta.recorded_as,
            start_wall_us=meta.start_wall_us,
            start_media_90k=meta.start_media_90k,
            duration_90k=meta.duration_90k,
            frame_count=meta.frame_count,
            init_bytes=meta.init_bytes,
            sha256=meta.sha256,
            anchor_wall_us=meta.anchor_wall_us,
            wall_source=WallSource(meta.wall_source).value,
            bytes=segment.bytes,
        )

    def to_store(self, camera_id: str) -> ImportMeta:
        """What the receiving store's importer checks; the camera comes from the URL."""
        return ImportMeta(
            camera_id=camera_id,
            run_id=self.run_id,
            seq=self.seq,
            recorded_by=self.recorded_by,
            recorded_as=self.recorded_as,
            start_wall_us=self.start_wall_us,
            start_media_90k=self.start_media_90k,
            duration_90k=self.duration_90k,
            frame_count=self.frame_count,
            init_bytes=self.init_bytes,
            sha256=self.sha256,
            anchor_wall_us=self.anchor_wall_us,
            wall_source=WallSource(self.wall_source),
        )
