"""One camera: connect, record runs of segments, reconnect with backoff, report health.

A thread, not a process: PyAV demux/mux releases the GIL in FFmpeg, and copy-only recording costs
about 1 % of a core per 1080p25 camera (docs/recorder.md). The demux loop does only cheap work per
packet; closing a segment's file happens here, indexing it on the camera's Committer thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from fractions import Fraction

import av
import av.container
import av.packet
import av.stream

from hotspare import metrics
from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder.audio import AudioTrack
from hotspare.recorder.backoff import Backoff
from hotspare.recorder.clock import (
    RunClock,
    TimestampDiscontinuity,
    believable_camera_anchor,
    decode_times,
    first_ts_from,
    frame_step_known,
    now_wall_us,
)
from hotspare.recorder.committer import Committer
from hotspare.recorder.drift import DriftTracker, reanchor_threshold_us, sender_report
from hotspare.recorder.health import CameraHealth, CameraState, HealthCell
from hotspare.recorder.late_drops import GUARD
from hotspare.recorder.parameter_sets import CODECS, annexb, parameter_sets, picture_size
from hotspare.recorder.prebuffer import PreBuffer, StandbySettings
from hotspare.recorder.read_interrupt import ReadInterrupt
from hotspare.recorder.rtp_loss import LossWatch, Unfit
from hotspare.recorder.segment_writer import TIME_BASE_90K, SegmentWriter, WrittenSegment
from hotspare.recorder.source import CameraSource, SourceError
from hotspare.recorder.store_protocol import RecorderStore
from hotspare.store.disk_errors import disk_advice
from hotspare.store.models import SegmentInfo, WallSource

log = logging.getLogger("hotspare.recorder.worker")

STOPPED = "stopped"

AAC_FRAME_SAMPLES = 1024
"""An audio packet's length when it does not say (AAC: 1024 samples a frame)."""

TRANSCODER_HELD_FRAMES = 2
"""AAC frames the G.711 transcoder holds before they come out (resampler + encoder delay)."""

AUDIO_QUEUE_MAX = 64
"""Audio packets held for the next frame at most (≈ 4 s of AAC at 16 kHz) before they are
written anyway."""

EARLY_AUDIO_MAX = 64
"""Audio packets kept while a run waits for its first written frame (≈ 4 s of AAC at 16 kHz,
6 s of G.711 in 100 ms packets): the audio that overtook the first keyframe is among them."""

STOP_DRAIN_SECONDS = 0.3
"""After stop(), keep writing for this long so frames already on the wire are not lost."""

MAX_HELD_WITHOUT_DTS = 16
"""Packets held at a run's start while FFmpeg gives no decode time (see `_Run._write`); a stream
that never gives one is then written with made-up decode times rather than held longer."""

STANDBY_RETRY_MAX_SECONDS = 30.0
"""A standby session the camera refuses is retried at most this often: the camera's own server
must never be crowded out of a small camera's session limit by a spare's retries."""

LEAD_IN_MAX_S = 1
"""A replayed run starts its audio at most this much (seconds) before its first frame."""

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


@dataclass
class SessionSteps:
    """Wall times (µs) of a connection's first steps, written once each by the demux thread.

    Why: a standard camera's takeover window is the claim, plus the session's open, plus the
    wait for the camera's next keyframe; these say which of them a camera's window went to
    (`failover.early_sessions.session_steps`, the `recording` event, bench/scale)."""

    open_started_us: int
    opened_us: int | None = None
    """`av.open` returned: RTSP PLAY answered and the first frame read by FFmpeg's probe."""
    first_packet_us: int | None = None
    first_keyframe_us: int | None = None
    """The first keyframe received and kept (pre-buffered, or written when live)."""


@dataclass(frozen=True)
class SpanCopy:
    """What a standby worker wrote for a gap repair (`CameraWorker.copy_span`)."""

    run_id: str | None
    """The run the span was written as in the given store (None: nothing was written)."""
    frames: int
    reach_wall_us: int | None
    """Wall time of the oldest keyframe the pre-buffer held (None: it was empty)."""


@dataclass(frozen=True)
class _SpanCut:
    """A span's packets as the demux thread handed them over, to be written by the asker."""

    packets: list[tuple[av.packet.Packet, int, bool]]
    """Copies (packet, receive wall µs, is audio): the pre-buffer keeps its own."""
    reach_wall_us: int | None
    container: av.container.InputContainer
    """The session's: the span's run reads its streams' parameters (the demux thread leaves it
    open while a span holds it, `_span_users`)."""


@dataclass(frozen=True)
class _SpanRequest:
    from_wall_us: int
    to_wall_us: int
    result: Future[_SpanCut | None]


_not_interruptible_said = False


def _warn_not_interruptible() -> None:
    """Once per process: this PyAV is not one `read_interrupt` can work with."""
    global _not_interruptible_said
    if not _not_interruptible_said:
        _not_interruptible_said = True
        log.warning("this PyAV version's reads cannot be interrupted (hotspare.recorder."
                    "read_interrupt found no timeout field): a camera that restarts its stream "
                    "over UDP with lower RTP sequence numbers will stall until they catch up "
                    "(minutes). Install the PyAV version hotspare is tested with (18.1), or record "
                    "such cameras over TCP.")


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
        self._spans: queue.SimpleQueue[_SpanRequest] = queue.SimpleQueue()
        self._span_lock = threading.Lock()
        self._span_users = 0  # spans handed over whose writing still reads the session's streams
        self._close_after_spans: av.container.InputContainer | None = None  # ended while in use
        self.standby_since_us: int | None = None
        """Wall time the current standby session started buffering (None: not buffering)."""
        self._run_began = False  # set by the demux thread when the current connection began a run
        self.session_steps: SessionSteps | None = None
        """The current (or last) connection's first steps; None before the first connect."""
        self._error_kind: str | None = None  # of the last connect that failed (SourceError.kind)
        self._stuck_reason: str | None = None  # set when a UDP session stuck on late drops is ended
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

    def copy_span(self, from_wall_us: int, to_wall_us: int, store: RecorderStore,
                  timeout_s: float) -> SpanCopy | None:
        """Write the pre-buffered frames of [from, to) into `store` as a run of their own, in
        whole GOPs (`PreBuffer.copy_span`), leaving the pre-buffer as it is: a gap repair
        (`hotspare.failover.gap_repair`). Called from another thread, which writes the span:
        the demux thread, at its next packet, only copies the span's packets out of the
        pre-buffer (a slow disk or a long span must not keep it from reading the camera). None
        when this worker is not pre-buffering or did not get to it within `timeout_s`, or when
        its session ended or was activated meanwhile. Returns once the span's segments are
        committed in `store`."""
        if not self.in_standby:
            return None
        request = _SpanRequest(from_wall_us, to_wall_us, Future[_SpanCut | None]())
        self._spans.put(request)
        try:
            cut = request.result.result(timeout_s)
        except FutureTimeout:
            if request.result.cancel():  # the demux thread skips it: it had not begun it
                return None
            cut = request.result.result()  # begun: a copy in memory, nearly done
        if cut is None:
            return None
        try:
            return self._write_span(cut, store)
        finally:
            with self._span_lock:
                self._span_users -= 1
                ended = self._close_after_spans if self._span_users == 0 else None
                if ended is not None:
                    self._close_after_spans = None
            if ended is not None:
                _close_quietly(ended)

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
                if self._stuck_reason is not None:  # not a failure: reconnect at once
                    self._stuck_reason = None
                    failures = 0
                    self._health.update(state=CameraState.CONNECTING, run_id=None)
                    log.warning("%s", reason)
                    continue
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
        """One connection = one run, or several when the camera's clock drift makes the
        recorder re-anchor (docs/recorder.md, *Time*). Returns why it ended (operator text)."""
        timeout_s = self._settings.open_timeout_seconds
        self._stuck_reason = None
        steps = self.session_steps = SessionSteps(now_wall_us())
        try:
            container, interrupt = self._source.open_session(timeout_s)
        except SourceError as exc:
            self._error_kind = exc.kind
            return str(exc)
        steps.opened_us = now_wall_us()
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
            watch = LossWatch(self.camera.id).start()  # lost RTP packets, as FFmpeg reports them
            unwatch = self._guard_late_drops(watch, interrupt)
            try:
                if self.in_standby:
                    ended = self._standby_until_activated(container, run, watch)
                    if ended is not None:
                        reason = ended
                        return ended
                audio = run.audio_stream_index
                for packet in container.demux(run.demuxed_streams):
                    # Write first, then look at the flag: the packet in hand is already paid for.
                    if packet.stream_index == audio:
                        if packet.size:
                            run.on_audio(packet)
                    elif packet.size:
                        if steps.first_packet_us is None:
                            steps.first_packet_us = now_wall_us()
                        unfit = watch.judge(packet)
                        if unfit is not None:
                            run.skip(unfit, watch)
                        else:
                            if steps.first_keyframe_us is None and packet.is_keyframe:
                                steps.first_keyframe_us = now_wall_us()  # before health says so
                            if run.on_packet(packet):
                                backoff.reset()
                                self._run_began = True
                    if self._stop.is_set():
                        # Drain briefly: frames captured before stop() may still be in flight.
                        if stop_at is None:
                            stop_at = time.monotonic() + STOP_DRAIN_SECONDS
                        # Stop where no frame shown before the last one written is still to
                        # come (B-frames), unless that takes a drain more.
                        now_s = time.monotonic()
                        if now_s >= stop_at and (run.whole
                                                 or now_s >= stop_at + STOP_DRAIN_SECONDS):
                            reason = STOPPED
                            return STOPPED
                reason = (
                    f"camera {self.camera.id} ({self._source.display_url}) ended the stream. "
                    "It may have rebooted or dropped this client."
                )
            except av.FFmpegError as exc:
                if interrupt is not None and interrupt.fired and self._stuck_reason is not None:
                    reason = self._stuck_reason
                else:
                    self._stuck_reason = None
                    reason = f"lost the stream: {self._source.explain(exc, timeout_s)}"
            except _RunEnded as exc:
                reason = str(exc)
            finally:
                unwatch()
                try:
                    run.finish(reason)  # also on an unexpected error: commit what was written
                finally:
                    watch.stop()
            return reason
        finally:
            with self._span_lock:
                in_use = self._span_users > 0
                if in_use:
                    self._close_after_spans = container  # the last span's writer closes it
            if in_use:
                log.info("camera %s: the ended session's stream stays open until a gap "
                         "repair's span from it is written", self.camera.id)
            else:
                _close_quietly(container)

    def _guard_late_drops(self, watch: LossWatch, interrupt: ReadInterrupt | None
                          ) -> Callable[[], None]:
        """Have `late_drops.GUARD` end this UDP session's read when a stream restart leaves
        FFmpeg dropping every packet as too late (the demux thread then reconnects at once)."""
        if interrupt is None:
            if self._source.transport == "udp":
                _warn_not_interruptible()
            return lambda: None

        def stuck(drops: int) -> None:
            self._stuck_reason = (
                f"camera {self.camera.id} ({self._source.display_url}) restarted its stream over "
                f"UDP with RTP sequence numbers below its last ones: FFmpeg dropped {drops} "
                "packets in a row as arriving too late and would go on for minutes. Reconnecting "
                "at once; the video from the restart to the first keyframe after the reconnect "
                "is lost.")

        return GUARD.watch(watch, interrupt, stuck)

    def _standby_until_activated(
        self, container: av.container.InputContainer, run: _Run, watch: LossWatch
    ) -> str | None:
        """Pre-buffer until activated (then replay the buffer into `run`; None: go on live) or
        until the session ends (the reason)."""
        assert self._standby is not None
        buffer = PreBuffer(self._standby, run.audio_stream)
        try:
            return self._prebuffer(container, run, buffer, watch)
        finally:
            self.standby_since_us = None
            self._answer_spans(container, None)  # a span asked of an ended session: nothing
            buffer.close()  # spill files of a session that ended, or left over by the replay

    def _prebuffer(self, container: av.container.InputContainer, run: _Run,
                   buffer: PreBuffer, watch: LossWatch) -> str | None:
        self._health.update(state=CameraState.STANDBY, error=None, error_kind=None,
                            consecutive_failures=0)
        self._run_began = True  # the session is proven: a later drop retries from the start
        window_start, window_bytes = now_wall_us(), 0
        for packet in container.demux(run.demuxed_streams):
            if self._stop.is_set():
                return STOPPED
            now = now_wall_us()
            if not packet.size:
                pass
            elif buffer.is_audio(packet):
                buffer.add_audio(packet, now)
                window_bytes += packet.size
            else:
                steps = self.session_steps
                if steps is not None and steps.first_packet_us is None:
                    steps.first_packet_us = now
                if watch.judge(packet) is None:  # frames damaged by lost packets are not kept
                    buffer.add(packet, now)
                    if packet.is_keyframe and self.standby_since_us is None:
                        self.standby_since_us = now  # the first frame held (gap repair)
                        if steps is not None and steps.first_keyframe_us is None:
                            steps.first_keyframe_us = now
                window_bytes += packet.size
                self._health.last_frame(now)
            if now - window_start >= 2_000_000:
                self._standby_kbps = window_bytes * 8 / ((now - window_start) / 1000)
                window_start, window_bytes = now, 0
            self._prebuffer_seconds = buffer.seconds(now)
            if not self._spans.empty():
                self._answer_spans(container, buffer)
            if self._activate_from is not None:
                self._replay(container, run, buffer, self._activate_from[0])
                return None
        return (f"camera {self.camera.id} ({self._source.display_url}) ended the hot-standby "
                "stream. It may have rebooted or dropped this client.")

    def _answer_spans(self, container: av.container.InputContainer,
                      buffer: PreBuffer | None) -> None:
        """Hand each span asked for (`copy_span`) over as copies of its buffered packets
        (`buffer` None: the session ended or was activated, nothing to give)."""
        while True:
            try:
                request = self._spans.get_nowait()
            except queue.Empty:
                return
            if not request.result.set_running_or_notify_cancel():
                continue  # the asker gave up waiting
            if buffer is None:
                request.result.set_result(None)
                continue
            try:
                packets, reach = buffer.copy_span(_keyframe_wall_of(container),
                                                  request.from_wall_us, request.to_wall_us)
            except Exception as exc:  # a spilled GOP that cannot be read back
                log.exception("camera %s: a gap repair's span could not be copied",
                              self.camera.id)
                request.result.set_exception(exc)
                continue
            with self._span_lock:
                self._span_users += 1
            request.result.set_result(_SpanCut(
                [(p, t, buffer.is_audio(p)) for p, t in packets], reach, container))

    def _write_span(self, cut: _SpanCut, store: RecorderStore) -> SpanCopy:
        """Write a span handed over by the demux thread as a run of its own in `store`."""
        if not cut.packets:
            return SpanCopy(None, 0, cut.reach_wall_us)
        writer = CameraWorker(self.camera, self._identity, store, self._settings)
        try:
            span = _Run(writer, cut.container, own_decoder=True)
            frames = 0
            try:
                for packet, recv_us, audio in cut.packets:
                    if audio:
                        span.on_audio(packet)
                    else:
                        frames += 1
                        span.on_packet(packet, recv_us)
            finally:
                span.finish("gap repair: written from the hot-standby pre-buffer")
            return SpanCopy(span.run_id, frames, cut.reach_wall_us)
        finally:
            if not writer._committer.close(timeout=30.0):
                log.error("camera %s: a gap repair's store writes did not finish within 30 s",
                          self.camera.id)

    def _replay(self, container: av.container.InputContainer, run: _Run, buffer: PreBuffer,
                from_wall_us: int | None) -> None:
        keyframe_wall = _keyframe_wall_of(container)
        wanted = None if from_wall_us is None else from_wall_us - ACTIVATION_MARGIN_US
        packets, covered = buffer.take_from(keyframe_wall, wanted)
        first_wall = keyframe_wall(packets[0][0].pts, packets[0][1]) if packets else None
        frames = sum(1 for packet, _ in packets if not buffer.is_audio(packet))
        # Known before the first frame is written, so whoever sees this camera `recording` sees it.
        self.activation = Activation(from_wall_us, first_wall, covered, frames)
        audio_from = run.lead_in([(p, t) for p, t in packets if buffer.is_audio(p)],
                                 packets[0][0].pts if packets else None,
                                 packets[0][1] if packets else 0)
        # In arrival order, as live demux hands them over: the run holds each audio packet
        # until the next frame and writes it just before that frame (the live cut rules).
        for packet, recv_us in packets:
            if buffer.is_audio(packet):
                if packet.pts is None or packet.pts >= audio_from:
                    run.on_audio(packet)
            elif run.on_packet(packet, recv_us):
                self._run_began = True
        self._prebuffer_seconds = 0.0
        level = logging.INFO if covered else logging.WARNING
        log.log(level, "camera %s: hot standby activated: %d pre-buffered frames written from "
                "%s%s", self.camera.id, frames,
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


def _keyframe_wall_of(container: av.container.InputContainer) -> Callable[[int | None, int], int]:
    """A pre-buffered keyframe's wall time from its pts and receive time: the camera's capture
    time once RTCP timed the session, else the receive time (never later than the capture)."""
    stream = container.streams.video[0]
    tb = stream.time_base or TIME_BASE_90K
    realtime = container.start_time_realtime  # wall µs of stream time 0, once RTCP arrived

    def keyframe_wall(pts: int | None, recv_us: int) -> int:
        if realtime is not None and pts is not None:
            return min(recv_us, realtime + round(pts * tb * 1_000_000))
        return recv_us

    return keyframe_wall


def _close_quietly(container: av.container.InputContainer) -> None:
    try:
        container.close()
    except av.FFmpegError:
        pass


def _disk_error(camera_id: str, path: object, exc: BaseException) -> _RunEnded:
    advice = disk_advice(exc)
    return _RunEnded(f"camera {camera_id}: cannot write segment file {path}: {exc}. "
                     f"{advice[:1].upper()}{advice[1:]}.")


class _Run:
    """The state of one connection: segments are cut here, timestamps mapped, the anchor kept."""

    def __init__(self, worker: CameraWorker, container: av.container.InputContainer, *,
                 own_decoder: bool = False) -> None:
        """`own_decoder`: a run written off the session's demux thread (a gap repair's span)
        decodes the camera's G.711 audio with a context of its own (`AudioTrack`)."""
        self._w = worker
        self._container = container
        self._stream = container.streams.video[0]
        self._clock = RunClock(self._stream.time_base or TIME_BASE_90K)
        self._audio = AudioTrack.of(container, worker.camera.id, own_decoder=own_decoder) \
            if worker.camera.record_audio else None
        self._audio_origin: int | None = None  # the run's first frame's stream time, in samples
        self._audio_queue: list[tuple[av.packet.Packet, int]] = []  # (packet, media samples)
        # Audio received before the run's first frame was written (`on_audio`).
        self._early_audio: deque[av.packet.Packet] = deque(maxlen=EARLY_AUDIO_MAX)
        self._lead_ts = 0  # media 0 this much before the first frame (stream ticks; lead_in)
        self._segment_90k = round(worker._settings.segment_seconds * 90_000)
        self.run_id: str | None = None
        self._anchor_source = WallSource.LOCAL
        self._seq = 0
        self._writer: SegmentWriter | None = None
        self._skipped = 0
        self._pending: list[tuple[av.packet.Packet, int]] = []  # first keyframe awaiting its time
        self._no_dts: list[tuple[av.packet.Packet, int, int]] = []  # (packet, media, now), held
        # Only a stream that reorders frames needs its dts-less first packets held (_write).
        self._dts_settled = not self._stream.codec_context.has_b_frames
        self._finished = False
        self._anchor_final = False  # True once the anchor can no longer improve this run
        self._local_anchor_us = 0  # best local-clock estimate of media 0's wall time
        self._stored_anchor_us = 0  # what the store holds now
        self._drift = DriftTracker(self._stream.time_base or TIME_BASE_90K)
        self._applied_drift_us = 0  # the drift the current run's anchor corrects
        # After the camera restarted its stream in this session (timestamps jumped), only a
        # sender report about the new timestamps may time a run (`_new_timeline`).
        self._restarted = False
        self._timeline_reported = False
        codec = self._stream.codec_context.name
        self._codec = codec if codec in CODECS else None
        extradata = self._stream.codec_context.extradata
        self._session_params = parameter_sets(extradata, codec) if extradata and self._codec \
            else ()
        self._params: tuple[bytes, ...] | None = None  # those of the open segment's init
        self._skipped_after_loss = 0  # frames left out since the last RTP loss (`skip`)

    @property
    def audio_stream_index(self) -> int | None:
        return None if self._audio is None else self._audio.input.index

    def lead_in(self, audio: list[tuple[av.packet.Packet, int]], keyframe_pts: int | None,
                keyframe_recv_us: int) -> int:
        """Start a replayed run's media time a little before its first frame, so that its audio
        joins, without a gap, the failed server's segment served up to that frame (`keyframe_pts`,
        received at `keyframe_recv_us`). That piece holds the audio its server wrote before the
        frame arrived: it lacks every audio packet that arrived after the frame although it
        starts before it (a camera's audio encoder delay makes that common), one more as a
        margin for the two sessions' arrival order, and for G.711 what the server's transcoder
        still held (two AAC frames). Returns the audio pts (stream ticks) from which `audio`
        ((packet, receive µs)) is to be fed: earlier packets would land before media 0, and the
        G.711 transcoder's AAC frames then start exactly at media 0."""
        everything = -(2**62)
        if self._audio is None or keyframe_pts is None or self._clock.started:
            return everything
        vtb = self._stream.time_base or TIME_BASE_90K
        atb = self._audio.input.time_base or self._audio.time_base
        keyframe_s = keyframe_pts * vtb
        timed = sorted((p.pts, recv_us) for p, recv_us in audio if p.pts is not None
                       and keyframe_s - LEAD_IN_MAX_S <= p.pts * atb <= keyframe_s)
        if not timed:
            return everything
        late = [i for i, (_, recv_us) in enumerate(timed) if recv_us >= keyframe_recv_us]
        index = max(0, (late[0] if late else len(timed) - 1) - 1)  # one packet of margin
        if self._audio.transcoded:
            held = Fraction(TRANSCODER_HELD_FRAMES * AAC_FRAME_SAMPLES, self._audio.rate)
            before = [i for i, (pts, _) in enumerate(timed)
                      if pts * atb <= timed[index][0] * atb - held]
            index = before[-1] if before else 0
        first = timed[index][0]
        self._lead_ts = round((keyframe_s - first * atb) / vtb)
        return first

    @property
    def audio_stream(self) -> av.stream.Stream | None:
        """The camera's audio stream when this run records it."""
        return None if self._audio is None else self._audio.input

    @property
    def demuxed_streams(self) -> list[av.stream.Stream]:
        video: list[av.stream.Stream] = [self._stream]
        return video if self._audio is None else [*video, self._audio.input]

    def on_audio(self, packet: av.packet.Packet | None) -> None:
        """Queue the camera's audio at media time (None: flush the transcoder at the run's
        end); `_write` muxes it just before the first frame that starts after it, so each
        segment holds the audio of its own frames' time and a cut after a frame cuts the audio
        there too. Audio timed before the run's first frame is dropped, like the frames before
        its first keyframe; audio *received* before that frame is written is kept until then
        (`_early_audio`): a camera's first keyframe is large and arrives after audio timed
        after it (seen: one or two AAC packets in 7 of 8 joins of a running stream; one CI run's
        audio began 0.32 s late), and a keyframe without pts or with B-frames waits for later
        frames."""
        if self._audio is None:
            return
        if self._writer is None or self._audio_origin is None:
            if packet is not None and self._seq == 0 and not self._finished:
                self._early_audio.append(packet)
            return
        try:
            for out, samples in self._audio.packets(packet):
                media = samples - self._audio_origin
                if media >= 0:
                    self._audio_queue.append((out, media))
        except av.FFmpegError as exc:  # a G.711 packet the transcoder refused: lose only it
            log.debug("camera %s: audio packet dropped: %s", self._w.camera.id, exc)
        if len(self._audio_queue) > AUDIO_QUEUE_MAX:  # video stalled: do not hold audio for ever
            self._write_audio(None)

    def _write_audio(self, before_90k: int | None, *, spanning_too: bool = True) -> None:
        """Mux the queued audio that starts before media time `before_90k` (None: all); without
        `spanning_too`, only what also ends a packet's length before then."""
        if self._audio is None or self._writer is None:
            return
        rate, queue = self._audio.rate, self._audio_queue

        def held(packet: av.packet.Packet, media: int) -> bool:
            assert before_90k is not None
            if spanning_too:
                return media * 90_000 >= before_90k * rate
            length = packet.duration or AAC_FRAME_SAMPLES
            return (media + 2 * length) * 90_000 > before_90k * rate

        count = len(queue) if before_90k is None else next(
            (i for i, (packet, media) in enumerate(queue) if held(packet, media)), len(queue))
        try:
            for out, media in queue[:count]:
                self._writer.write_audio(out, media)
        except (av.FFmpegError, OSError) as exc:
            raise _disk_error(self._w.camera.id, self._writer.path, exc) from exc
        del queue[:count]

    @property
    def whole(self) -> bool:
        """True when every frame shown before the last one written has been written too."""
        return self._clock.whole and not self._no_dts

    def skip(self, unfit: Unfit, watch: LossWatch) -> None:
        """Leave out a frame FFmpeg handed over after losing RTP packets (`rtp_loss`): at the
        damaged one, the open segment ends after the last whole frame; the frames after it wait
        for the next keyframe, which starts a new segment of the same run. So every segment
        decodes whole, no frame is stored at a time it was not captured, and the lost stretch is
        a gap that a spare's copy fills at re-insert (docs/recorder.md, *Packet loss*)."""
        w = self._w
        w._health.last_frame(now_wall_us())  # the camera sends: only these frames are not kept
        if unfit is Unfit.UNREFERENCED:
            self._skipped_after_loss += 1
            return
        self._pending = []  # a first keyframe awaiting its time would be timed across the gap
        if self._no_dts:
            self._release_held(None)
        if self._writer is not None:
            self._write_audio(None)
            self._close_segment(self._clock.end_media_90k())
        level = logging.WARNING if watch.losses <= 3 or watch.losses % 20 == 0 else logging.DEBUG
        log.log(level, "camera %s (%s): %d RTP packet(s) lost in transit (loss %d on this "
                "connection, %d packets in all; the previous one cost %d frame(s)). The frame "
                "being received and the frames up to the next keyframe are not recorded: a gap "
                "in the recording. Check the network path, or set the camera's transport to "
                "tcp.", w.camera.id, w._source.display_url, watch.latest, watch.losses,
                watch.packets_lost, self._skipped_after_loss)
        self._skipped_after_loss = 1

    def on_packet(self, packet: av.packet.Packet, now: int | None = None) -> bool:
        """Handle one packet (received at `now`, wall µs); True when it began the run."""
        if now is None:
            now = now_wall_us()
        report = sender_report(packet)
        if report is not None:
            if not self._restarted:
                self._drift.add(*report)
            elif self._drift.add(*report, (packet.pts, self._container.start_time_realtime)):
                self._timeline_reported = True
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
            if self._clock.started:
                self._write(packet, self._clock.stream_ts(packet.pts), now)
            else:  # the camera restarted its stream among these packets (_new_timeline)
                self._before_start(packet, now)

    def _start(self, first_ts: int, frame_step: int, now: int) -> None:
        lead, self._lead_ts = self._lead_ts, 0  # the first run of a replay only
        self._clock.start(first_ts, frame_step, lead)
        tb = self._stream.time_base or TIME_BASE_90K
        if self._audio is not None:
            # With audio set up, FFmpeg times both streams from the same RTCP-synchronised origin.
            self._audio_origin = round((first_ts - lead) * tb * self._audio.rate)
        try:
            self._begin_run(now - round(lead * tb * 1_000_000))
        except Exception as exc:
            raise _RunEnded(
                f"camera {self._w.camera.id}: the segment store refused a new run ({exc}). Check "
                "the store directory's disk and permissions."
            ) from exc

    def _write(self, packet: av.packet.Packet, ts: int, now: int) -> None:
        """Map one packet to media time and mux it, or hold it while its decode time is unknown.

        FFmpeg hands over the first packets of a stream with B-frames without dts (keyframe, then
        a P-frame shown after the B-frames that follow it). dts = pts for them would make the
        muxer refuse the next B-frame (its dts lower), so they wait for a packet with a dts
        that, with them, shows the frame step (`clock.frame_step_known`), and then get decode
        times that fit below it (`clock.decode_times`): two or three frames of latency at a
        run's start, no video lost.
        """
        try:
            media = self._clock.media_90k(ts)
        except TimestampDiscontinuity as exc:
            self._new_timeline(str(exc), now)
            self._before_start(packet, now)
            return
        if packet.is_keyframe and self._reanchor_due():
            media = self._reanchor(ts, media, now)
        if (not self._dts_settled and len(self._no_dts) < MAX_HELD_WITHOUT_DTS
                and not frame_step_known([m for _, m, _ in self._no_dts] + [media])):
            # Even a dts FFmpeg gives is not kept this early: at a join it put the keyframe's
            # two frames before the P-frame's (a 200 ms first sample at 10 fps). Made up with
            # the others once the frame step is known, it is one frame.
            self._no_dts.append((packet, media, now))
            return
        if packet.dts is not None:
            dts = self._clock.dts_90k(packet.dts, media)
            self._release_held((media, dts))
        elif not self._dts_settled and len(self._no_dts) < MAX_HELD_WITHOUT_DTS:
            self._no_dts.append((packet, media, now))
            return
        else:
            self._release_held(None)
            dts = media
        self._mux(packet, media, dts, now)

    def _reanchor_due(self) -> bool:
        return (self._anchor_source is WallSource.CAMERA and self._writer is not None
                and not self._no_dts
                and abs(self._drift.drift_us - self._applied_drift_us)
                >= reanchor_threshold_us(self._clock.frame_duration_90k))

    def _reanchor(self, ts: int, media: int, now: int) -> int:
        """The camera's clock drifted from its first sender report's mapping: end the run at this
        keyframe and go on, on the same connection, with a new run anchored on the latest
        report. Returns the keyframe's media time in the new run (0)."""
        w, old_run = self._w, self.run_id
        assert old_run is not None
        drift, was = self._drift.drift_us, self._applied_drift_us
        reason = (f"re-anchored on the camera's clock: it drifted {(drift - was) / 1000:+.1f} ms "
                  f"from its sender reports in {media / 90_000:.0f} s")
        if self._audio_queue:
            self._write_audio(media)  # the old run's audio up to this keyframe
        self._close_segment(media)
        store = w._store
        w._committer.submit(lambda: store.end_run(old_run, now, reason), f"end run {old_run}")
        step, audio_origin = self._clock.frame_step, self._audio_origin
        self._clock = RunClock(self._stream.time_base or TIME_BASE_90K)
        self._seq = 0
        self._applied_drift_us = drift
        self._start(ts, step, now)
        if self._audio_queue and audio_origin is not None and self._audio_origin is not None:
            shift = self._audio_origin - audio_origin  # audio queued for the new run's media time
            self._audio_queue = [(p, m - shift) for p, m in self._audio_queue if m >= shift]
        log.info("camera %s: run %s %s; recording on as run %s", w.camera.id, old_run, reason,
                 self.run_id)
        return self._clock.media_90k(ts)

    def _new_timeline(self, jump: str, now: int) -> None:
        """The camera restarted its stream inside this session (an encoder restart: RTP
        timestamps and sequence numbers from a new random base, maybe a new SSRC). End the run
        at its last frame and record on, on the same connection, as a new run from the next
        keyframe: timed by our clock until a sender report about the new timestamps arrives
        (reports about the old ones still come for a while), then by the camera's."""
        w = self._w
        old_run = self.run_id
        reason = (f"the camera restarted its stream ({jump}); recording on as a new run from "
                  "its next keyframe")
        self._release_held(None)
        if self._writer is not None:
            if self._audio_queue:
                self._write_audio(None)
            self._close_segment(self._clock.end_media_90k())
        if old_run is not None:
            store = w._store
            w._committer.submit(lambda: store.end_run(old_run, now, reason),
                                f"end run {old_run}")
        log.warning("camera %s (%s): %s. Run %s ended; if this repeats, check the camera's "
                    "uptime and encoder.", w.camera.id, w._source.display_url, reason, old_run)
        self._clock = RunClock(self._stream.time_base or TIME_BASE_90K)
        self._seq = 0
        self.run_id = None
        self._anchor_source = WallSource.LOCAL
        self._anchor_final = False
        self._dts_settled = not self._stream.codec_context.has_b_frames
        self._audio_origin = None
        self._audio_queue = []
        self._early_audio.clear()  # timed on the old timestamps
        self._skipped = 0
        self._restarted = True
        self._timeline_reported = False

    def _keyframe_params(self, packet: av.packet.Packet) -> tuple[bytes, ...] | None:
        """The parameter sets a keyframe carries in band (None: none, or not H.264/H.265)."""
        if self._codec is None:
            return None
        return parameter_sets(bytes(packet), self._codec) or None

    def _log_new_parameters(self, params: tuple[bytes, ...]) -> None:
        codec = self._codec or ""
        before = picture_size(self._params or (), codec)
        after = picture_size(params, codec)
        what = (f"its picture size from {before[0]}x{before[1]} to {after[0]}x{after[1]}"
                if before and after and before != after else "its stream parameters (SPS/PPS)")
        log.warning("camera %s (%s): the camera changed %s in the same session; run %s goes on "
                    "with a new segment (and init section) from this keyframe.",
                    self._w.camera.id, self._w._source.display_url, what, self.run_id)

    def _release_held(self, after: tuple[int, int] | None) -> None:
        """Write the packets held without dts, before the packet `after` = (media, dts) if any."""
        self._dts_settled = True
        if not self._no_dts:
            return
        held, self._no_dts = self._no_dts, []
        times = decode_times([media for _, media, _ in held], after)
        for (packet, media, now), dts in zip(held, times, strict=True):
            self._mux(packet, media, dts, now)

    def _mux(self, packet: av.packet.Packet, media: int, dts: int, now: int) -> None:
        """Cut a segment on a keyframe if due, and mux the packet."""
        w = self._w
        if not self._anchor_final:
            # Until RTCP arrives, the least-delayed packet gives the best local estimate: the first
            # ones sat in FFmpeg's probe buffer for up to a GOP before we saw them.
            estimate = now - media * 1_000_000 // 90_000
            if estimate < self._local_anchor_us:
                self._local_anchor_us = estimate
            self._try_camera_anchor(now)
        params = self._keyframe_params(packet) if packet.is_keyframe else None
        changed = params is not None and self._params is not None and params != self._params
        cut = packet.is_keyframe and self._writer is not None \
            and (changed or media - self._writer.start_media_90k >= self._segment_90k)
        if changed and params is not None and self._writer is not None:
            self._log_new_parameters(params)
        if self._audio_queue:
            # At a cut, the copied audio packet that spans the keyframe, and one before it, start
            # the new segment: a served piece of another run cut at this keyframe lacks what
            # arrived after the keyframe there (the two sessions' arrival order may differ by a
            # packet), so the next piece must carry it for the audio to join without a gap.
            # (The G.711 transcoder's frames come out up to two frames late and reach the new
            # segment anyway.)
            transcoded = self._audio is not None and self._audio.transcoded
            self._write_audio(media, spanning_too=not cut or transcoded)
        if cut:
            self._close_segment(media)
        if self._writer is None:
            assert self.run_id is not None
            path = w._store.segment_path(w.camera.id, self.run_id, self._seq)
            self._params = params or self._params or self._session_params
            own = self._params if self._params != self._session_params else None
            try:
                self._writer = SegmentWriter(
                    path, self._stream, media,
                    flush_every_frame=w._settings.flush_every_frame,
                    fragment_seconds=w._settings.fragment_seconds,
                    audio=self._audio,
                    parameter_sets=annexb(own) if own else None,
                    picture_size=picture_size(own, self._codec or "") if own else None,
                )
            except (av.FFmpegError, OSError) as exc:
                raise _disk_error(w.camera.id, path, exc) from exc
            while self._early_audio:  # the run's first segment: audio that came before its frame
                self.on_audio(self._early_audio.popleft())
        if cut and self._audio_queue:
            self._write_audio(media)
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
        try:
            self._release_held(None)
        except _RunEnded as exc:
            log.warning("camera %s: could not record the last frames of a connection: %s",
                        self._w.camera.id, exc)
        if self._writer is not None:
            try:
                self.on_audio(None)  # what the G.711 transcoder still holds
                self._write_audio(None)
            except _RunEnded:
                log.warning("camera %s: the last audio of run %s could not be written",
                            self._w.camera.id, self.run_id)
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
        if self._restarted:  # only a report about the new timestamps maps them (_new_timeline)
            self._applied_drift_us = self._drift.drift_us
            if not self._timeline_reported:
                anchor = None
        if anchor is not None:
            anchor += self._applied_drift_us
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
        if self._restarted:
            if not self._timeline_reported:
                return  # the reports so far are about the timestamps before the restart
            self._applied_drift_us = self._drift.drift_us
            anchor += self._applied_drift_us
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
