"""One camera: connect, record runs of segments, reconnect with backoff, report health.

A thread, not a process: PyAV demux/mux releases the GIL in FFmpeg, and copy-only recording costs
about 1 % of a core per 1080p25 camera (docs/recorder.md). The demux loop does only cheap work per
packet; closing a segment's file happens here, indexing it on the camera's Committer thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import av
import av.container
import av.packet

from hotspare import metrics
from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder.backoff import Backoff
from hotspare.recorder.clock import (
    RunClock,
    TimestampDiscontinuity,
    believable_camera_anchor,
    first_ts_from,
    now_wall_us,
)
from hotspare.recorder.committer import Committer
from hotspare.recorder.health import CameraHealth, CameraState, HealthCell
from hotspare.recorder.prebuffer import PreBuffer, StandbySettings
from hotspare.recorder.segment_writer import TIME_BASE_90K, SegmentWriter, WrittenSegment
from hotspare.recorder.source import CameraSource, SourceError
from hotspare.recorder.store_protocol import RecorderStore
from hotspare.store.disk_errors import disk_advice
from hotspare.store.models import SegmentInfo, WallSource

log = logging.getLogger("hotspare.recorder.worker")

STOPPED = "stopped"

STOP_DRAIN_SECONDS = 0.3
"""After stop(), keep writing for this long so frames already on the wire are not lost."""

STANDBY_RETRY_MAX_SECONDS = 30.0
"""A standby session the camera refuses is retried at most this often: the camera's own server
must never be crowded out of a small camera's session limit by a spare's retries."""

ACTIVATION_MARGIN_US = 1_000_000
"""Start writing this much before the watermark: the failed server's clock and ours may differ
by NTP's error; the extra frames are dropped by re-insert's overlap rule, a missing one is lost."""


@dataclass(frozen=True)
class Activation:
    """What a standby worker wrote when it was switched to recording (for events and tests)."""

    from_wall_us: int | None
    first_wall_us: int | None
    """Wall time of the first frame written from the pre-buffer (None: nothing was buffered)."""
    covered: bool
    """True when the pre-buffer reached back to the watermark: no frame lost to the takeover."""
    frames: int
    """Frames written from the pre-buffer."""


class _RunEnded(Exception):
    """Internal: the connection must be dropped; the message is the run's end reason."""


class CameraWorker:
    """Records one camera until asked to stop; owns its thread, committer and health cell."""

    def __init__(
        self,
        camera: CameraConfig,
        identity: str,
        store: RecorderStore,
        settings: RecordingSettings,
        on_segment: Callable[[SegmentInfo], None] | None = None,
        standby: StandbySettings | None = None,
    ) -> None:
        """With `standby`, the worker connects and pre-buffers without writing until
        `activate()` (a spare's hot standby for a gapless camera)."""
        self.camera = camera
        self._identity = identity
        self._store = store
        self._settings = settings
        self._on_segment = on_segment
        self._source = CameraSource.from_config(camera)
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts a reconnect wait short (stop or activation)
        self._standby = standby
        self._activate_lock = threading.Lock()
        self._activate_from: tuple[int | None] | None = None  # set once, by activate()
        self.activation: Activation | None = None
        self._prebuffer_seconds = 0.0
        self._standby_kbps = 0.0
        self._run_began = False  # set by the demux thread when the current connection began a run
        self._error_kind: str | None = None  # of the last connect that failed (SourceError.kind)
        self._health = HealthCell(camera.id)
        self._committer = Committer(camera.id, log)
        self._thread = threading.Thread(
            target=self._main, name=f"hotspare-rec-{camera.id}", daemon=True
        )

    # ------------------------------------------------------------------ control from other threads

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def in_standby(self) -> bool:
        return self._standby is not None and self._activate_from is None

    def activate(self, from_wall_us: int | None) -> None:
        """Switch a standby worker to recording: write the pre-buffer from the last keyframe at or
        before `from_wall_us` (the failed server's watermark; None = all of it), then go live.

        Called from the spare's agent thread; the demux thread makes the switch at its next
        packet, or connects at once if it was waiting to retry.
        """
        with self._activate_lock:
            if self._activate_from is None:
                self._activate_from = (from_wall_us,)
        self._wake.set()

    def standby_info(self) -> tuple[float, float]:
        """(seconds pre-buffered, received kbit/s) of a standby session."""
        return self._prebuffer_seconds, self._standby_kbps

    def join(self, timeout: float | None) -> bool:
        """Wait for the demux thread and then the committer; True when both finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def health(self) -> CameraHealth:
        """The health cell, with one judgement only a reader can make: a camera whose session is
        open but that sent no video for `stall_seconds` is failing, whatever the demux thread
        (blocked in FFmpeg, waiting for RTP that never comes while RTCP keeps the socket busy)
        last said. Liveness then drops and a spare steps in; frames coming back undo it."""
        health = self._health.get()
        if health.state in (CameraState.RECORDING, CameraState.STANDBY) and \
                health.last_frame_wall_us is not None:
            silent_s = (now_wall_us() - health.last_frame_wall_us) / 1e6
            if silent_s > self._settings.stall_seconds:
                return replace(health, state=CameraState.FAILING, error=(
                    f"camera {self.camera.id} ({self._source.display_url}): no video for "
                    f"{silent_s:.0f} s although its session is open (it may send only RTCP). "
                    "Check the camera's encoder; recording resumes by itself when frames return."))
        return health

    # ------------------------------------------------------------------------------ the thread

    def _main(self) -> None:
        backoff = Backoff(
            self._settings.reconnect_initial_seconds, self._settings.reconnect_max_seconds
        )
        standby_backoff = Backoff(
            self._settings.reconnect_initial_seconds,
            max(self._settings.reconnect_max_seconds, STANDBY_RETRY_MAX_SECONDS),
        )
        failures = 0
        try:
            while not self._stop.is_set():
                self._health.update(
                    state=CameraState.FAILING if failures else CameraState.CONNECTING
                )
                self._run_began = False
                try:
                    reason = self._connect_and_record(backoff)
                except Exception as exc:  # a bug must not stop this camera for good
                    log.exception("camera %s: unexpected error in the recorder", self.camera.id)
                    reason = (
                        f"camera {self.camera.id}: internal recorder error ({exc!r}); see the log "
                        "and report it."
                    )
                if self._stop.is_set():
                    break
                failures = 1 if self._run_began else failures + 1
                delay = (standby_backoff if self.in_standby else backoff).next_delay()
                self._health.update(
                    state=CameraState.FAILING,
                    error=reason,
                    error_kind=self._error_kind,
                    consecutive_failures=failures,
                    run_id=None,
                )
                level = logging.WARNING if failures <= 3 or failures % 20 == 0 else logging.DEBUG
                what = " (hot-standby session)" if self.in_standby else ""
                log.log(level, "%s%s Retrying in %.1f s (attempt %d).", reason, what, delay,
                        failures + 1)
                self._wake.wait(delay)
                self._wake.clear()
        finally:
            if not self._committer.close(timeout=30.0):
                log.error("camera %s: store writes did not finish within 30 s", self.camera.id)

    def _connect_and_record(self, backoff: Backoff) -> str:
        """One connection = at most one run. Returns why it ended (operator text)."""
        timeout_s = self._settings.open_timeout_seconds
        try:
            container = self._source.open(timeout_s)
        except SourceError as exc:
            self._error_kind = exc.kind
            return str(exc)
        self._error_kind = None
        try:
            if not container.streams.video:
                return (
                    f"camera {self.camera.id} ({self._source.display_url}): the stream has no "
                    "video. "
                    "Check the URL names a video profile/channel."
                )
            log.info("camera %s: connected to %s%s", self.camera.id, self._source.display_url,
                     " (hot standby)" if self.in_standby else "")
            run = _Run(self, container)
            reason = f"camera {self.camera.id}: internal recorder error"
            stop_at: float | None = None
            try:
                if self.in_standby:
                    ended = self._standby_until_activated(container, run)
                    if ended is not None:
                        reason = ended
                        return ended
                for packet in container.demux(container.streams.video[0]):
                    # Write first, then look at the flag: the packet in hand is already paid for.
                    if packet.size and run.on_packet(packet):
                        backoff.reset()
                        self._run_began = True
                    if self._stop.is_set():
                        # Drain briefly: frames captured before stop() may still be in flight.
                        if stop_at is None:
                            stop_at = time.monotonic() + STOP_DRAIN_SECONDS
                        if time.monotonic() >= stop_at:
                            reason = STOPPED
                            return STOPPED
                reason = (
                    f"camera {self.camera.id} ({self._source.display_url}) ended the stream. "
                    "It may have rebooted or dropped this client."
                )
            except av.FFmpegError as exc:
                reason = f"lost the stream: {self._source.explain(exc, timeout_s)}"
            except _RunEnded as exc:
                reason = str(exc)
            finally:
                run.finish(reason)  # also on an unexpected error: commit what was written
            return reason
        finally:
            try:
                container.close()
            except av.FFmpegError:
                pass

    def _standby_until_activated(
        self, container: av.container.InputContainer, run: _Run
    ) -> str | None:
        """Pre-buffer until activated (then replay the buffer into `run`; None: go on live) or
        until the session ends (the reason)."""
        assert self._standby is not None
        buffer = PreBuffer(self._standby)
        try:
            return self._prebuffer(container, run, buffer)
        finally:
            buffer.close()  # spill files of a session that ended, or left over by the replay

    def _prebuffer(self, container: av.container.InputContainer, run: _Run,
                   buffer: PreBuffer) -> str | None:
        self._health.update(state=CameraState.STANDBY, error=None, error_kind=None,
                            consecutive_failures=0)
        self._run_began = True  # the session is proven: a later drop retries from the start
        window_start, window_bytes = now_wall_us(), 0
        for packet in container.demux(container.streams.video[0]):
            if self._stop.is_set():
                return STOPPED
            now = now_wall_us()
            if packet.size:
                buffer.add(packet, now)
                window_bytes += packet.size
                self._health.last_frame(now)
            if now - window_start >= 2_000_000:
                self._standby_kbps = window_bytes * 8 / ((now - window_start) / 1000)
                window_start, window_bytes = now, 0
            self._prebuffer_seconds = buffer.seconds(now)
            if self._activate_from is not None:
                self._replay(container, run, buffer, self._activate_from[0])
                return None
        return (f"camera {self.camera.id} ({self._source.display_url}) ended the hot-standby "
                "stream. It may have rebooted or dropped this client.")

    def _replay(self, container: av.container.InputContainer, run: _Run, buffer: PreBuffer,
                from_wall_us: int | None) -> None:
        stream = container.streams.video[0]
        tb = stream.time_base or TIME_BASE_90K
        realtime = container.start_time_realtime  # wall µs of stream time 0, once RTCP arrived

        def keyframe_wall(pts: int | None, recv_us: int) -> int:
            if realtime is not None and pts is not None:
                return min(recv_us, realtime + round(pts * tb * 1_000_000))
            return recv_us

        wanted = None if from_wall_us is None else from_wall_us - ACTIVATION_MARGIN_US
        packets, covered = buffer.take_from(keyframe_wall, wanted)
        first_wall = keyframe_wall(packets[0][0].pts, packets[0][1]) if packets else None
        # Known before the first frame is written, so whoever sees this camera `recording` sees it.
        self.activation = Activation(from_wall_us, first_wall, covered, len(packets))
        for packet, recv_us in packets:
            if run.on_packet(packet, recv_us):
                self._run_began = True
        self._prebuffer_seconds = 0.0
        level = logging.INFO if covered else logging.WARNING
        log.log(level, "camera %s: hot standby activated: %d pre-buffered frames written from "
                "%s%s", self.camera.id, len(packets),
                "the start of the buffer" if first_wall is None or from_wall_us is None else
                f"{(first_wall - from_wall_us) / 1e6:+.2f} s of the failed server's watermark",
                "" if covered else "; the buffer did not reach back to the watermark, so video "
                "between them is lost (raise the pre-buffer horizon or memory cap)")

    # ---------------------------------------------------------------- used by _Run (same thread)

    def _commit_async(self, run_id: str, seq: int, written: WrittenSegment) -> None:
        def job() -> None:
            started = time.monotonic()
            info = self._store.commit_segment(
                run_id,
                seq,
                written.start_media_90k,
                written.duration_90k,
                written.frame_count,
                written.init_bytes,
            )
            camera = self.camera.id
            metrics.SEGMENT_COMMIT_SECONDS.labels(camera).observe(time.monotonic() - started)
            metrics.SEGMENTS_COMMITTED.labels(camera).inc()
            metrics.BYTES_COMMITTED.labels(camera).inc(info.bytes)
            self._health.update(
                last_commit_wall_us=now_wall_us(),
                committed_until_wall_us=info.end_wall_us,
            )
            self._health.add(segments=1, frames=written.frame_count)
            if self._on_segment is not None:
                try:
                    self._on_segment(info)
                except Exception:
                    log.exception("camera %s: on_segment callback failed", self.camera.id)

        self._committer.submit(job, f"index segment {seq} of run {run_id}")


def _disk_error(camera_id: str, path: object, exc: BaseException) -> _RunEnded:
    advice = disk_advice(exc)
    return _RunEnded(f"camera {camera_id}: cannot write segment file {path}: {exc}. "
                     f"{advice[:1].upper()}{advice[1:]}.")


class _Run:
    """The state of one connection: segments are cut here, timestamps mapped, the anchor kept."""

    def __init__(self, worker: CameraWorker, container: av.container.InputContainer) -> None:
        self._w = worker
        self._container = container
        self._stream = container.streams.video[0]
        self._clock = RunClock(self._stream.time_base or TIME_BASE_90K)
        self._segment_90k = round(worker._settings.segment_seconds * 90_000)
        self.run_id: str | None = None
        self._anchor_source = WallSource.LOCAL
        self._seq = 0
        self._writer: SegmentWriter | None = None
        self._skipped = 0
        self._pending: list[tuple[av.packet.Packet, int]] = []  # first keyframe awaiting its time
        self._finished = False
        self._anchor_final = False  # True once the anchor can no longer improve this run
        self._local_anchor_us = 0  # best local-clock estimate of media 0's wall time
        self._stored_anchor_us = 0  # what the store holds now

    def on_packet(self, packet: av.packet.Packet, now: int | None = None) -> bool:
        """Handle one packet (received at `now`, wall µs); True when it began the run."""
        if now is None:
            now = now_wall_us()
        if self._clock.started:
            self._write(packet, self._clock.stream_ts(packet.pts), now)
            return False
        return self._before_start(packet, now)

    def _before_start(self, packet: av.packet.Packet, now: int) -> bool:
        """Wait for the first keyframe; hold it while its stream time is unknown (no pts).

        A first keyframe without pts is timed from the two next packets that carry one
        (`clock.first_ts_from` says why 0 is wrong); holding it costs two frames of latency at
        the start of a run, not a frame of video.
        """
        pending = self._pending
        if not pending:
            if not packet.is_keyframe:
                self._skipped += 1  # undecodable without its keyframe
                return False
            if packet.pts is not None:
                self._start(packet.pts, 0, now)
                self._write(packet, packet.pts, now)
                return True
        pending.append((packet, now))
        found = first_ts_from([p.pts for p, _ in pending[1:]])
        if found is None:
            return False
        self._start_pending(*found)
        return True

    def _start_pending(self, first_ts: int, frame_step: int) -> None:
        pending, self._pending = self._pending, []
        packet, now = pending[0]
        self._start(first_ts, frame_step, now)
        self._write(packet, first_ts, now)
        for packet, now in pending[1:]:
            self._write(packet, self._clock.stream_ts(packet.pts), now)

    def _start(self, first_ts: int, frame_step: int, now: int) -> None:
        self._clock.start(first_ts, frame_step)
        try:
            self._begin_run(now)
        except Exception as exc:
            raise _RunEnded(
                f"camera {self._w.camera.id}: the segment store refused a new run ({exc}). Check "
                "the store directory's disk and permissions."
            ) from exc

    def _write(self, packet: av.packet.Packet, ts: int, now: int) -> None:
        """Map one packet to media time, cut a segment on a keyframe if due, and mux it."""
        w = self._w
        try:
            media = self._clock.media_90k(ts)
        except TimestampDiscontinuity as exc:
            raise _RunEnded(
                f"camera {w.camera.id}: {exc}; ending the run so recorded times stay truthful. "
                "Check the camera's clock/NTP settings if this repeats."
            ) from None
        if not self._anchor_final:
            # Until RTCP arrives, the least-delayed packet gives the best local estimate: the first
            # ones sat in FFmpeg's probe buffer for up to a GOP before we saw them.
            estimate = now - media * 1_000_000 // 90_000
            if estimate < self._local_anchor_us:
                self._local_anchor_us = estimate
            self._try_camera_anchor(now)
        if packet.is_keyframe and self._writer is not None:
            if media - self._writer.start_media_90k >= self._segment_90k:
                self._close_segment(media)
        if self._writer is None:
            assert self.run_id is not None
            path = w._store.segment_path(w.camera.id, self.run_id, self._seq)
            try:
                self._writer = SegmentWriter(
                    path, self._stream, media,
                    flush_every_frame=w._settings.flush_every_frame,
                    fragment_seconds=w._settings.fragment_seconds,
                )
            except (av.FFmpegError, OSError) as exc:
                raise _disk_error(w.camera.id, path, exc) from exc
        dts = self._clock.dts_90k(packet.dts, media) if packet.dts is not None else media
        try:
            self._writer.write(packet, media, dts, self._clock.frame_duration_90k)
        except (av.FFmpegError, OSError) as exc:
            raise _disk_error(w.camera.id, self._writer.path, exc) from exc
        w._health.last_frame(now)

    def finish(self, reason: str) -> None:
        """Close and commit the open segment, then end the run (in the store's order)."""
        if self._finished:
            return
        self._finished = True
        if self._pending:
            # The connection ended while the first keyframe waited for its timing: record it
            # anyway, timed as well as the few packets allow (duplicates beat gaps).
            found = first_ts_from([p.pts for p, _ in self._pending[1:]])
            try:
                self._start_pending(*(found or self._fallback_first_ts()))
            except Exception:
                log.exception(
                    "camera %s: could not record the last %d frames of a connection",
                    self._w.camera.id,
                    len(self._pending),
                )
        if self._writer is not None:
            self._close_segment(self._clock.end_media_90k())
        if self.run_id is not None:
            run_id, store, ended = self.run_id, self._w._store, now_wall_us()
            self._w._committer.submit(
                lambda: store.end_run(run_id, ended, reason), f"end run {run_id}"
            )
            log.info(
                "camera %s: run %s ended after %d segments (%s)",
                self._w.camera.id,
                run_id,
                self._seq,
                reason if reason == STOPPED else "connection lost",
            )

    # ----------------------------------------------------------------------------------------

    def _fallback_first_ts(self) -> tuple[int, int]:
        """First keyframe's stream time when fewer than two later packets carry a pts."""
        rate = self._stream.guessed_rate
        tb = self._stream.time_base
        step = round(1 / (rate * tb)) if rate and tb else 0
        after = [(i + 1, p.pts) for i, (p, _) in enumerate(self._pending[1:]) if p.pts is not None]
        if after and step:
            i, ts = after[0]
            return ts - i * step, step
        return 0, step  # FFmpeg's own origin: right for a fresh stream, at most a frame early

    def _begin_run(self, now_us: int) -> None:
        w = self._w
        anchor = self._clock.camera_anchor_us(self._container.start_time_realtime)
        if anchor is not None and believable_camera_anchor(anchor, now_us):
            self._anchor_source = WallSource.CAMERA
            self._anchor_final = True
        else:
            anchor = now_us
        self._local_anchor_us = self._stored_anchor_us = anchor
        run = w._store.begin_run(w.camera.id, w._identity, anchor, self._anchor_source)
        self.run_id = run.run_id
        w._health.update(
            state=CameraState.RECORDING, run_id=run.run_id, error=None, error_kind=None,
            consecutive_failures=0,
        )
        log.info(
            "camera %s: recording run %s (wall clock from %s; %d frames before the first "
            "keyframe skipped)",
            w.camera.id,
            run.run_id,
            self._anchor_source.value,
            self._skipped,
        )

    def _try_camera_anchor(self, now_us: int) -> None:
        anchor = self._clock.camera_anchor_us(self._container.start_time_realtime)
        if anchor is None:
            return
        w = self._w
        local_anchor = self._local_anchor_us
        if not believable_camera_anchor(anchor, local_anchor):
            log.warning(
                "camera %s: its clock is %.1f s off ours; keeping our clock for this run. "
                "Check NTP on the camera.",
                w.camera.id,
                (anchor - local_anchor) / 1e6,
            )
            self._anchor_final = True  # keep our clock; do not ask again this run
            return
        self._anchor_source = WallSource.CAMERA
        self._anchor_final = True
        run_id, store = self.run_id, w._store
        assert run_id is not None
        w._committer.submit(
            lambda: store.update_run_anchor(run_id, anchor, WallSource.CAMERA),
            f"refine the wall-clock anchor of run {run_id}",
        )
        log.info(
            "camera %s: run %s now timed by the camera's clock (RTCP); it differs from ours "
            "by %+.1f ms",
            w.camera.id,
            run_id,
            (anchor - local_anchor) / 1000,
        )

    def _close_segment(self, end_media_90k: int) -> None:
        writer, self._writer = self._writer, None
        assert writer is not None and self.run_id is not None
        seq = self._seq
        self._seq += 1
        try:
            written = writer.close(end_media_90k)
        except (av.FFmpegError, OSError, ValueError) as exc:
            log.error(
                "camera %s: could not finish segment file %s: %s. Check disk space and "
                "permissions.",
                self._w.camera.id,
                writer.path,
                exc,
            )
            return
        self._w._commit_async(self.run_id, seq, written)
        self._refine_local_anchor()

    def _refine_local_anchor(self) -> None:
        """Store a better local-clock anchor, at most once per segment and only if 5 ms better."""
        if self._anchor_source is not WallSource.LOCAL or self.run_id is None:
            return
        if self._stored_anchor_us - self._local_anchor_us < 5_000:
            return
        run_id, anchor, store = self.run_id, self._local_anchor_us, self._w._store
        self._stored_anchor_us = anchor
        self._w._committer.submit(
            lambda: store.update_run_anchor(run_id, anchor, WallSource.LOCAL),
            f"refine the local wall-clock anchor of run {run_id}",
        )
