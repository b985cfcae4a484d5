"""The simulated-camera process: N cameras behind one GStreamer RTSP server, plus a control API.

Each camera has its own frame clock that runs from process start whether or not anyone watches and
whether or not the camera is "offline", like a real camera that keeps capturing while its network
is down. Every tick makes one frame: the next access unit of the shared pre-encoded clip with a tag
SEI (camera id, frame number, capture wall time) spliced in, pushed into the camera's live RTSP
stream if it has one, and written to the camera's frame log either way.

Time: frame n of a camera is captured at wall time start + n/fps (µs, exact). Its PTS is the
pipeline running time at that same instant, found by reading the pipeline clock and the wall clock
together at push time and subtracting how late the push is. The RTP timestamps therefore advance
exactly one frame per frame across clip loops, and RTCP sender reports (NTP = wall clock) map RTP
time to the same wall time the SEI carries.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

from hotspare.camerasim.clip import Clip, ClipParams, default_cache_dir, load_or_encode  # noqa: E402
from hotspare.camerasim.framelog import FrameLogWriter, log_path  # noqa: E402
from hotspare.camerasim.options import (  # noqa: E402
    READY_PREFIX,
    StreamSpec,
    build_parser,
    parse_camera_streams,
    parse_max_sessions,
    stream_spec_text,
)
from hotspare.camerasim.sei import build_sei_annexb  # noqa: E402

_SECOND_NS = 1_000_000_000
_Num = TypeVar("_Num", int, float)


@dataclass
class Camera:
    """One simulated camera: its frame clock, online state and the live stream (if any)."""

    camera_id: str
    index: int
    start_wall_ns: int
    start_mono_ns: int  # the same instant on the monotonic clock, which paces the frames
    fps: int
    log: FrameLogWriter | None
    clip: Clip
    audio: AudioTrack | None = None
    frame_no: int = 0  # next frame tick: the frame captured now (with B-frames, not the one sent)
    online: bool = True
    offline_until: float | None = None  # time.monotonic(); None while online or offline for good
    stalled_until: float = 0.0  # time.monotonic(): sessions stay open, RTCP flows, no RTP before
    appsrc: Gst.Element | None = None
    audiosrc: Gst.Element | None = None
    media: GstRtspServer.RTSPMedia | None = None
    need_headers: bool = True
    media_dying: bool = False  # the last client left; the media is being torn down
    generation: int = 0  # bumped to keep new clients away from a dying media
    last_dts: int = -1
    delivered: int = 0
    clock: Gst.Clock | None = None  # a clock of its own when its RTP clock drifts (clock_ppm)
    clock_ppm: int = 0
    clock_origin_ns: int = 0  # where the drifting clock and the shared one agree
    max_sessions: int | None = None  # None: as many RTSP sessions as clients ask for
    refused: int = 0  # requests answered 503 because the session limit was reached
    rtpcaps: Gst.Element | None = None  # the capsfilter after the payloader (restart_stream)
    restart_pending: bool = False  # new RTP timestamp/sequence base from the next keyframe on
    restart_ssrc: bool = False  # ... and a new SSRC with it
    restart_seq_below: bool = False  # ... and a sequence base that reads as older than the last
    restarts: int = 0  # in-session stream restarts done
    next_clip: Clip | None = None  # the clip (another picture size) from the next keyframe on
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wall_ns_of(self, frame_no: int) -> int:
        return self.start_wall_ns + frame_no * _SECOND_NS // self.fps

    def mono_ns_of(self, frame_no: int) -> int:
        return self.start_mono_ns + frame_no * _SECOND_NS // self.fps

    def on_own_clock(self, ns: int) -> int:
        """A time of the shared pipeline clock as this camera's (drifting) clock reads it."""
        if not self.clock_ppm:
            return ns
        delta = ns - self.clock_origin_ns
        return self.clock_origin_ns + delta + delta * self.clock_ppm // 1_000_000


_AUDIO_FORMATS = {  # rate, encoder + payloader; FFmpeg's RTSP client reads all three
    "pcmu": (8000, "mulawenc ! rtppcmupay name=pay1"),
    "pcma": (8000, "alawenc ! rtppcmapay name=pay1"),
    "aac": (16000, "voaacenc bitrate=32000 ! aacparse ! rtpmp4gpay name=pay1 pt=97"),
}
BEEP_HZ = 1000


@dataclass(frozen=True)
class AudioTrack:
    """Audio a test can check sync against: a beep for exactly the interval of every keyframe.

    Frame n's audio is the samples of [n/fps, (n+1)/fps) on the same clock as the video, so a
    beep's onset is a keyframe's capture instant. Made of precomputed chunks: no per-frame maths.
    """

    codec: str
    rate: int
    fps: int
    gop_frames: int
    beeps: dict[int, bytes] = field(default_factory=dict)  # chunk length -> S16LE samples

    @classmethod
    def make(cls, codec: str, fps: int, gop_frames: int) -> AudioTrack:
        rate = _AUDIO_FORMATS[codec][0]
        lengths = {rate // fps, -(-rate // fps)}
        amplitude = 0.5 * 32767
        beeps = {
            n: b"".join(
                int(amplitude * math.sin(2 * math.pi * BEEP_HZ * k / rate)).to_bytes(
                    2, "little", signed=True
                )
                for k in range(n)
            )
            for n in lengths
        }
        return cls(codec, rate, fps, gop_frames, beeps)

    def launch(self) -> str:
        caps = f"audio/x-raw,format=S16LE,layout=interleaved,rate={self.rate},channels=1"
        return (
            "appsrc name=asrc is-live=true format=time do-timestamp=false max-bytes=2000000 "
            f"leaky-type=downstream caps={caps} ! {_AUDIO_FORMATS[self.codec][1]}"
        )

    def chunk(self, frame_no: int) -> bytes:
        first = frame_no * self.rate // self.fps
        count = (frame_no + 1) * self.rate // self.fps - first
        return self.beeps[count] if frame_no % self.gop_frames == 0 else bytes(2 * count)


# Not UNPREPARED: a media just constructed for a first client is UNPREPARED until that client
# prepares it, and a second client arriving meanwhile must share it, not get a second one.
_DYING = (GstRtspServer.RTSPMediaStatus.UNPREPARING, GstRtspServer.RTSPMediaStatus.ERROR)


class _CameraFactory(GstRtspServer.RTSPMediaFactory):
    """A shared-media factory that never hands a new client the media being torn down.

    GStreamer 1.22's factory cache still returns a shared media while its last client's teardown
    is unpreparing it; the new client then gets 503 ("can not reuse media"). Recorders reconnect
    at once, and a failover test reconnects many, so this is not rare: measured on the first try
    with back-to-back connections. The cache key carries a generation that moves on as soon as
    the current media is on its way out, so the lookup misses and a fresh media is built.
    """

    def __init__(self, cam: Camera) -> None:
        super().__init__()
        self.cam = cam

    def do_create_element(self, url: GstRtsp.RTSPUrl) -> Gst.Element:
        """The launch line's pipeline, with the bin `pay0` (payloader + capsfilter) given the
        `src` pad the RTSP media links; the capsfilter is how a restart sets new RTP bases."""
        element = GstRtspServer.RTSPMediaFactory.do_create_element(self, url)
        pay = element.get_by_name("pay0")
        pay.add_pad(Gst.GhostPad.new("src", pay.get_by_name("rtpcaps").get_static_pad("src")))
        return element

    def do_gen_key(self, url: GstRtsp.RTSPUrl) -> str:
        cam = self.cam
        with cam.lock:
            media, dying = cam.media, cam.media_dying
        # The status is read outside cam.lock: the frame clock takes that lock for every frame.
        if media is not None and (dying or media.get_status() in _DYING):
            with cam.lock:
                if cam.media is media:
                    cam.generation += 1
                    cam.media = None
                    cam.appsrc = None
                    cam.audiosrc = None
        with cam.lock:
            return f"/{cam.camera_id}#{cam.generation}"


class Simulator:
    def __init__(
        self,
        args: argparse.Namespace,
        clips: dict[str, Clip],
        audio: dict[str, AudioTrack | None],
        camera_ids: list[str],
        clock_ppm: dict[str, int] | None = None,
    ) -> None:
        self.args = args
        self.fps = args.fps
        log_dir: Path | None = args.log_dir
        start = time.time_ns()
        start_mono = time.monotonic_ns()
        n = len(camera_ids)
        self.cameras: dict[str, Camera] = {}
        for i, cid in enumerate(camera_ids):
            # Spread the cameras' capture instants over one frame interval so that the ticker does
            # not push 32 frames at the same instant (and real cameras are not in phase either).
            phase = i * _SECOND_NS // (self.fps * n)
            writer = FrameLogWriter(log_path(log_dir, cid)) if log_dir is not None else None
            self.cameras[cid] = Camera(
                cid, i, start + phase, start_mono + phase, self.fps, writer, clips[cid], audio[cid]
            )
        self.rtcp_interval_ns = int(args.rtcp_interval * _SECOND_NS)
        self.clock = Gst.SystemClock.obtain()
        self.clock.set_property("clock-type", Gst.ClockType.MONOTONIC)
        # GstSystemClock and time.monotonic_ns() read the same CLOCK_MONOTONIC; measure anyway.
        self.clock_offset_ns = self.clock.get_time() - time.monotonic_ns()
        for cid, ppm in (clock_ppm or {}).items():
            if ppm:
                self._give_drifting_clock(self.cameras[cid], ppm)
        self._stop = threading.Event()
        self._client_cams: dict[int, tuple[GstRtspServer.RTSPClient, set[str]]] = {}
        # Per camera, the clients (id of the wrapper kept alive in _client_cams) that hold one of
        # its sessions: taken at SETUP, given back at TEARDOWN or when the connection closes.
        self._sessions: dict[str, set[int]] = {cid: set() for cid in camera_ids}
        self._client_lock = threading.Lock()
        for cid, limit in args.max_sessions.items():
            self.cameras[cid].max_sessions = limit
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(args.bind)
        self.server.set_service(str(args.rtsp_port))
        # The default pool has one thread: clients would be served one at a time (measured 13 s
        # for 8 clients). Each client gets its own thread; recorders reconnect in bursts.
        self.server.get_thread_pool().set_max_threads(max(16, 4 * n + 8))
        # Its listen backlog (5 by default) is shared by every simulated camera, where each real
        # camera has its own: a spare opening N sessions at once at a takeover overflowed it,
        # and the refused connections came ~1 s later (TCP's SYN retry), a simulator artifact
        # in the takeover's measured start-up (bench.scale.sessions).
        self.server.set_backlog(max(64, 4 * n + 8))
        mounts = self.server.get_mount_points()
        for cam in self.cameras.values():
            mounts.add_factory(f"/{cam.camera_id}", self._make_factory(cam))
        self.server.connect("client-connected", self._on_client_connected)
        self.ticker = threading.Thread(target=self._tick_loop, name="frame-clock", daemon=True)

    def _give_drifting_clock(self, cam: Camera, ppm: int) -> None:
        """A pipeline clock running `ppm` fast. The RTP session stamps RTP time from the pipeline
        clock and pairs it in sender reports with the system's real time (its default NTP
        source), so the camera's RTP clock drifts from true time while every report stays true:
        what a camera whose encoder clock drifts from its NTP-disciplined wall clock sends."""
        clock = Gst.SystemClock()
        clock.set_property("clock-type", Gst.ClockType.MONOTONIC)
        origin = self.clock.get_time()
        clock.set_calibration(origin, origin, 1_000_000 + ppm, 1_000_000)
        cam.clock, cam.clock_ppm, cam.clock_origin_ns = clock, ppm, origin

    # ------------------------------------------------------------------------------------ RTSP

    def _make_factory(self, cam: Camera) -> GstRtspServer.RTSPMediaFactory:
        factory = _CameraFactory(cam)
        h26x = cam.clip.params.codec  # "h264" / "h265", as in the GStreamer element names
        audio = cam.audio.launch() if cam.audio is not None else ""
        factory.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=false "
            "max-bytes=20000000 leaky-type=downstream "
            f"caps=video/x-{h26x},stream-format=byte-stream,alignment=au "
            f"! {h26x}parse ! ( name=pay0 rtp{h26x}pay name=rtppay pt=96 config-interval=0 "
            f"! capsfilter name=rtpcaps caps=application/x-rtp ) {audio} )"
        )
        factory.set_shared(True)  # one live stream per camera, however many clients
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        factory.set_latency(0)
        factory.connect("media-configure", self._on_media_configure, cam)
        return factory

    def _on_media_configure(
        self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia, cam: Camera
    ) -> None:
        self._attach(media, cam)
        media.connect("prepared", self._attach, cam)
        media.connect("target-state", self._on_target_state, cam)
        media.connect("unprepared", self._on_media_unprepared, cam)
        # Running time = the monotonic system clock, fixed for the media's whole life. With the
        # default (a new base time at every PAUSED->PLAYING, e.g. between preroll and PLAY), a
        # PTS computed a moment earlier can land minutes in the future: the sinks then hold the
        # stream back (seen under load as clients stuck probing forever) and RTCP shifts.
        media.set_clock(cam.clock or self.clock)
        pipeline = media.get_element().get_parent()
        if pipeline is not None:
            pipeline.set_start_time(Gst.CLOCK_TIME_NONE)
            pipeline.set_base_time(0)
            pipeline.connect("deep-element-added", self._on_element_added)

    def _on_element_added(self, _bin: Gst.Bin, _sub: Gst.Bin, element: Gst.Element) -> None:
        """Tune the RTP sessions rtsp-media creates while preparing.

        rtcp-sync-send-time=False makes sender reports map RTP time to the wall time of the
        buffer's PTS (our capture instant) instead of the instant it passed the session, which
        would add any queueing delay to every recorder's wall clock. A shorter RTCP interval gets
        the first report to a new client sooner (recorders only know wall time after it).
        """
        factory = element.get_factory()
        if factory is not None and factory.get_name() == "rtpsession":
            element.set_property("rtcp-sync-send-time", False)
            element.set_property("rtcp-min-interval", self.rtcp_interval_ns)

    def _attach(self, media: GstRtspServer.RTSPMedia, cam: Camera) -> None:
        with cam.lock:
            cam.appsrc = media.get_element().get_by_name("src")
            cam.audiosrc = media.get_element().get_by_name("asrc")
            cam.rtpcaps = media.get_element().get_by_name("rtpcaps")
            cam.media = media
            cam.media_dying = False
            cam.need_headers = True  # a new stream: its first frame may not be a keyframe
            cam.last_dts = -1  # a new pipeline has seen no buffer yet

    def _on_target_state(self, media: GstRtspServer.RTSPMedia, state: int, cam: Camera) -> None:
        if state == Gst.State.NULL:
            with cam.lock:
                if cam.media is media:
                    cam.media_dying = True

    def _on_media_unprepared(self, media: GstRtspServer.RTSPMedia, cam: Camera) -> None:
        with cam.lock:
            if cam.media is media:
                cam.appsrc = None
                cam.audiosrc = None
                cam.media = None

    def _on_client_connected(
        self, _server: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient
    ) -> None:
        with self._client_lock:
            self._client_cams[id(client)] = (client, set())
        for name in ("pre-describe-request", "pre-setup-request", "pre-play-request"):
            client.connect(name, self._on_pre_request, name == "pre-setup-request")
        client.connect("teardown-request", self._on_teardown)
        client.connect("closed", self._on_client_closed)

    def _camera_of(self, ctx: GstRtspServer.RTSPContext) -> Camera | None:
        uri = ctx.uri
        if uri is None or not uri.abspath:
            return None
        first = uri.abspath.strip("/").split("/", 1)[0]
        return self.cameras.get(first)

    def _on_pre_request(
        self, client: GstRtspServer.RTSPClient, ctx: GstRtspServer.RTSPContext, is_setup: bool
    ) -> GstRtsp.RTSPStatusCode:
        """Refuse offline cameras and cameras at their session limit; note who plays what.

        GstRTSPSessionPool's max-sessions counts the whole server, not one camera, so the limit
        is kept here. A full camera refuses DESCRIBE already (what FFmpeg sees first, as with
        real cameras), and SETUP claims the session under the same lock, so two clients that
        both got past DESCRIBE cannot both get the last one.
        """
        cam = self._camera_of(ctx)
        if cam is None:
            return GstRtsp.RTSPStatusCode.OK  # the mount points answer 404 themselves
        if not cam.online:
            return GstRtsp.RTSPStatusCode.SERVICE_UNAVAILABLE
        key = id(client)
        with self._client_lock:
            holders = self._sessions[cam.camera_id]
            if key not in holders:
                limit = cam.max_sessions
                if limit is not None and len(holders) >= limit:
                    cam.refused += 1
                    return GstRtsp.RTSPStatusCode.SERVICE_UNAVAILABLE
                if is_setup:
                    holders.add(key)
            entry = self._client_cams.get(key)
            if entry is not None:
                entry[1].add(cam.camera_id)
        return GstRtsp.RTSPStatusCode.OK

    def _on_teardown(
        self, client: GstRtspServer.RTSPClient, ctx: GstRtspServer.RTSPContext
    ) -> None:
        """Free the session at TEARDOWN too: a client may keep its connection for the next one."""
        cam = self._camera_of(ctx)
        if cam is None:
            return
        key = id(client)
        with self._client_lock:
            self._sessions[cam.camera_id].discard(key)
            entry = self._client_cams.get(key)
            if entry is not None:
                entry[1].discard(cam.camera_id)

    def _on_client_closed(self, client: GstRtspServer.RTSPClient) -> None:
        key = id(client)
        with self._client_lock:
            self._client_cams.pop(key, None)
            for holders in self._sessions.values():
                holders.discard(key)

    def clients_of(self, camera_id: str) -> list[GstRtspServer.RTSPClient]:
        with self._client_lock:
            return [c for c, cams in self._client_cams.values() if camera_id in cams]

    # ----------------------------------------------------------------------------- frame clock

    def _tick_loop(self) -> None:
        # Paced by the monotonic clock: a wall-clock step must neither stall nor burst the cameras.
        heap = [(cam.mono_ns_of(0), cam.index, cam) for cam in self.cameras.values()]
        heapq.heapify(heap)
        next_flush = time.monotonic() + 1.0
        while not self._stop.is_set():
            due_ns, idx, cam = heap[0]
            wait = (due_ns - time.monotonic_ns()) / _SECOND_NS
            if wait > 0:
                if self._stop.wait(min(wait, 0.5)):
                    break
                continue
            self._capture(cam)
            heapq.heapreplace(heap, (cam.mono_ns_of(cam.frame_no), idx, cam))
            now = time.monotonic()
            if now >= next_flush:
                next_flush = now + 1.0
                self.flush_logs()

    def _capture(self, cam: Camera) -> None:
        """One tick: frame `tick` is captured now; the access unit sent is the one due in decode
        order, which with B-frames is a frame captured up to `lookahead` ticks ago."""
        tick = cam.frame_no
        cam.frame_no = tick + 1
        if cam.offline_until is not None and time.monotonic() >= cam.offline_until:
            cam.online = True
            cam.offline_until = None
        clip = cam.clip
        decode_no = tick - clip.lookahead
        if cam.online and cam.audio is not None:
            with cam.lock:
                audiosrc = cam.audiosrc
                if audiosrc is not None:
                    self._push_audio(cam, cam.audio, audiosrc, tick)
        if decode_no < 0:
            return  # the first reference frame waits for the B-frames shown before it
        if cam.next_clip is not None and decode_no % clip.params.gop_frames == 0:
            # A GOP boundary in decode order is one in presentation order too (closed GOPs of
            # the same structure), so no frame number is skipped or sent twice.
            clip = cam.clip = cam.next_clip
            cam.next_clip = None
        i = decode_no % len(clip.access_units)
        n = decode_no - i + clip.presentation[i]  # the frame number (presentation order)
        wall_ns = cam.wall_ns_of(n)
        delivered = False
        if cam.online and time.monotonic() >= cam.stalled_until:
            with cam.lock:
                appsrc = cam.appsrc
                if appsrc is not None:
                    delivered = self._push(cam, appsrc, decode_no, n, wall_ns)
        if delivered:
            cam.delivered += 1
        if cam.log is not None:
            cam.log.add(n, wall_ns // 1000, cam.online, delivered)

    def _push(
        self, cam: Camera, appsrc: Gst.Element, decode_no: int, n: int, wall_ns: int
    ) -> bool:
        clip = cam.clip
        pts = cam.on_own_clock(cam.mono_ns_of(n) + self.clock_offset_ns)  # running time
        # DTS lags PTS by the reorder delay at most; the sinks sync on DTS, which is in the past.
        dts = cam.on_own_clock(cam.mono_ns_of(decode_no - clip.reorder_delay)
                               + self.clock_offset_ns)
        if dts <= cam.last_dts:
            return False
        i = decode_no % len(clip.access_units)
        au = clip.access_units[i]
        k = clip.vcl_offsets[i]
        sei = build_sei_annexb(cam.camera_id, n, wall_ns // 1000, clip.params.codec)
        if cam.need_headers and not clip.keyframes[i]:
            # A stream that starts mid-GOP still needs SPS/PPS before the parser can give caps
            # (and the SDP its sprop-parameter-sets); a camera would send them in the SDP too.
            data = clip.parameter_sets + au[:k] + sei + au[k:]
        else:
            data = au[:k] + sei + au[k:]
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = pts
        buf.dts = dts
        buf.duration = _SECOND_NS // self.fps
        if not clip.keyframes[i]:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        elif cam.restart_pending:
            self._restart_at(cam, pts)
        ret = appsrc.emit("push-buffer", buf)
        if ret != Gst.FlowReturn.OK:
            return False
        cam.need_headers = False
        cam.last_dts = dts
        return True

    def _restart_at(self, cam: Camera, pts: int) -> None:
        """From the access unit stamped `pts` on, the payloader numbers its packets from a new
        random RTP timestamp and sequence base (and SSRC): what a camera whose encoder restarts
        sends. Switched in the streaming thread as that access unit reaches the payloader, so
        every packet of the frames before keeps the old numbering; the RTP session's sender
        reports then map the new timestamps to the same wall clock."""
        cam.restart_pending = False
        capsfilter = cam.rtpcaps
        if capsfilter is None:
            return
        caps = f"application/x-rtp,timestamp-offset=(uint){random.getrandbits(32)}"
        if cam.restart_ssrc:
            caps += f",ssrc=(uint){random.getrandbits(32)}"
        below = cam.restart_seq_below
        pay = cam.media.get_element().get_by_name("rtppay") if cam.media is not None else None
        if pay is None:
            return

        def switch(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            buf = info.get_buffer()
            if buf is None or buf.pts == Gst.CLOCK_TIME_NONE or buf.pts < pts:
                return Gst.PadProbeReturn.PASS
            # Below: 1 000-30 000 under the last number sent, older as a 16-bit serial number.
            seq = ((pay.get_property("seqnum") - random.randint(1_000, 30_000)) % 65536 if below
                   else random.getrandbits(16))
            capsfilter.set_property("caps", Gst.Caps.from_string(
                f"{caps},seqnum-offset=(uint){seq}"))
            cam.restarts += 1
            return Gst.PadProbeReturn.REMOVE

        pay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, switch)

    def _push_audio(self, cam: Camera, audio: AudioTrack, src: Gst.Element, tick: int) -> None:
        """The audio of frame interval `tick`, stamped on the video's clock (beep = keyframe)."""
        buf = Gst.Buffer.new_wrapped(audio.chunk(tick))
        buf.pts = cam.on_own_clock(cam.mono_ns_of(tick) + self.clock_offset_ns)
        buf.duration = cam.on_own_clock(cam.mono_ns_of(tick + 1)) - cam.on_own_clock(
            cam.mono_ns_of(tick))
        src.emit("push-buffer", buf)

    def flush_logs(self) -> None:
        for cam in self.cameras.values():
            if cam.log is not None:
                try:
                    cam.log.flush()
                except OSError as exc:  # a full disk must not stop the cameras
                    print(f"camera-sim: frame log of {cam.camera_id}: {exc}", file=sys.stderr)

    # -------------------------------------------------------------------------------- control

    def set_offline(self, camera_id: str, seconds: float | None) -> None:
        cam = self.cameras[camera_id]
        cam.online = False
        cam.offline_until = None if seconds is None else time.monotonic() + seconds
        for client in self.clients_of(camera_id):
            client.close()  # like a camera that vanished: the connection goes, not just the stream

    def set_online(self, camera_id: str) -> None:
        cam = self.cameras[camera_id]
        cam.offline_until = None
        cam.stalled_until = 0.0
        cam.online = True

    def stall(self, camera_id: str, seconds: float | None) -> None:
        """A camera whose encoder hangs while its network stack lives: sessions stay open and the
        RTP session keeps sending RTCP, but no video packet leaves for `seconds` (no `seconds`:
        until `online`). Frames keep counting, logged not delivered."""
        cam = self.cameras[camera_id]
        cam.stalled_until = math.inf if seconds is None else time.monotonic() + seconds

    def restart_stream(self, camera_id: str, *, close: bool, new_ssrc: bool,
                       down_s: float, seq_below: bool = False) -> None:
        """A camera restarting its stream, as after an encoder restart or a reboot. In session
        (`close` false): from the next keyframe on, new random RTP timestamp and sequence bases
        (and SSRC with `new_ssrc`; with `seq_below` the sequence base 1 000-30 000 below the last
        number sent, which a receiver's reorder logic reads as older), the sessions stay open.
        With `close`: every connection
        closed and new ones refused for `down_s`; the next session gets new bases anyway
        (a new media pipeline). Frame numbers go on either way."""
        if close:
            self.set_offline(camera_id, down_s)
            return
        cam = self.cameras[camera_id]
        cam.restart_ssrc = new_ssrc
        cam.restart_seq_below = seq_below
        cam.restart_pending = True

    def change_resolution(self, camera_id: str, width: int, height: int) -> None:
        """From the next keyframe on, send the same stream at `width`x`height`: new SPS/PPS in
        the same session, frame numbers going on. The clip is encoded (or read from the cache)
        first, here, so the switch itself costs the frame clock nothing."""
        cam = self.cameras[camera_id]
        params = replace(cam.clip.params, width=width, height=height)
        clip, _cached = load_or_encode(params, self.args.cache_dir or default_cache_dir())
        cam.next_clip = clip

    def set_max_sessions(self, camera_id: str, limit: int | None) -> None:
        """Sessions already open are kept, like a camera reconfigured while streaming."""
        with self._client_lock:
            self.cameras[camera_id].max_sessions = limit

    def session_count(self, camera_id: str) -> int:
        with self._client_lock:
            return len(self._sessions[camera_id])

    def status(self) -> list[dict[str, Any]]:
        out = []
        for cam in self.cameras.values():
            remaining = None
            if cam.offline_until is not None:
                remaining = max(0.0, cam.offline_until - time.monotonic())
            out.append(
                {
                    "id": cam.camera_id,
                    "path": f"/{cam.camera_id}",
                    "online": cam.online,
                    "offline_remaining_s": remaining,
                    # None: stalled until `online`
                    "stalled_remaining_s": (None if math.isinf(cam.stalled_until) else
                                            max(0.0, cam.stalled_until - time.monotonic())),
                    "frames_produced": cam.frame_no,
                    "frames_delivered": cam.delivered,
                    "clients": len(self.clients_of(cam.camera_id)),
                    "sessions": self.session_count(cam.camera_id),
                    "max_sessions": cam.max_sessions,
                    "sessions_refused": cam.refused,
                    "streaming": cam.appsrc is not None,
                    "start_wall_us": cam.start_wall_ns // 1000,
                    "width": cam.clip.params.width,
                    "height": cam.clip.params.height,
                    "stream_restarts": cam.restarts,
                }
            )
        return out

    def stop(self) -> None:
        self._stop.set()
        if self.ticker.is_alive():
            self.ticker.join(timeout=2.0)
        for cam in self.cameras.values():
            if cam.log is not None:
                cam.log.close()


class _ControlHandler(BaseHTTPRequestHandler):
    sim: Simulator  # set on the subclass made in serve_control

    def log_message(self, format: str, *args: Any) -> None:
        pass  # stdout carries the READY line; keep it clean

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        segs = [s for s in parts.path.split("/") if s]
        if segs == ["cameras"]:
            self._send(200, {"cameras": self.sim.status()})
        elif len(segs) == 2 and segs[0] == "cameras":
            found = [c for c in self.sim.status() if c["id"] == segs[1]]
            self._send(200, found[0]) if found else self._send(404, {"error": "unknown camera"})
        elif segs == ["health"]:
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        segs = [s for s in parts.path.split("/") if s]
        actions = ("offline", "online", "max_sessions", "stall", "restart", "resolution")
        if len(segs) != 3 or segs[0] != "cameras" or segs[2] not in actions:
            self._send(404, {"error": "not found"})
            return
        cid = segs[1]
        if cid not in self.sim.cameras:
            self._send(404, {"error": f"unknown camera {cid!r}"})
            return
        try:
            limit = _non_negative(parts.query, "limit", int)
            seconds = _non_negative(parts.query, "seconds", float)
            width = _non_negative(parts.query, "width", int)
            height = _non_negative(parts.query, "height", int)
        except ValueError as exc:
            self._send(400, {"error": str(exc)})
            return
        flags = parse_qs(parts.query)
        if segs[2] == "resolution":
            if not width or not height or width % 2 or height % 2:
                self._send(400, {"error": "width and height must be given, even and positive"})
                return
            try:
                self.sim.change_resolution(cid, width, height)
            except (RuntimeError, ValueError) as exc:
                self._send(500, {"error": f"could not make a {width}x{height} clip: {exc}"})
                return
        elif segs[2] == "restart":
            self.sim.restart_stream(cid, close=flags.get("close", ["0"])[0] == "1",
                                    new_ssrc=flags.get("ssrc", ["0"])[0] == "1",
                                    down_s=seconds or 0.0,
                                    seq_below=flags.get("seq", [""])[0] == "below")
        elif segs[2] == "online":
            self.sim.set_online(cid)
        elif segs[2] == "max_sessions":
            self.sim.set_max_sessions(cid, limit)
        elif segs[2] == "stall":
            self.sim.stall(cid, seconds)
        else:
            self.sim.set_offline(cid, seconds)
        found = [c for c in self.sim.status() if c["id"] == cid]
        self._send(200, found[0])


def _non_negative(query: str, name: str, parse: type[_Num]) -> _Num | None:
    """A query parameter that may be left out (None: no limit, no end); bad ones are a 400."""
    values = parse_qs(query).get(name)
    if not values:
        return None
    try:
        value = parse(values[0])
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise ValueError(f"{name} must be {kind}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def serve_control(sim: Simulator, bind: str, port: int) -> ThreadingHTTPServer:
    handler = type("Handler", (_ControlHandler,), {"sim": sim})
    httpd = ThreadingHTTPServer((bind, port), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="control", daemon=True).start()
    return httpd


# ------------------------------------------------------------------------------------------- CLI


def _gop_frames(text: str, fps: int) -> int:
    """GOP as frames ("50") or seconds ("2s", "0.5s")."""
    if text.endswith("s"):
        frames = round(float(text[:-1]) * fps)
    else:
        frames = int(text)
    if frames < 1:
        raise argparse.ArgumentTypeError(f"GOP {text!r} is less than one frame")
    return frames


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    # Drop the "sim_" prefix that keeps these options apart inside `hotspare`'s own parser.
    args = argparse.Namespace(**{k.removeprefix("sim_"): v for k, v in vars(ns).items()})
    t0 = time.monotonic()
    Gst.init(None)
    if args.camera_ids:
        camera_ids = [c.strip() for c in args.camera_ids.split(",") if c.strip()]
    else:
        camera_ids = [f"cam-{i}" for i in range(1, args.cameras + 1)]
    if not camera_ids or len(set(camera_ids)) != len(camera_ids):
        print("camera-sim: camera ids must be given and distinct", file=sys.stderr)
        return 2
    bad = [c for c in camera_ids if "/" in c or not c.isprintable() or " " in c]
    if bad:
        print(f"camera-sim: camera ids must be single path segments: {bad}", file=sys.stderr)
        return 2
    try:
        args.max_sessions = parse_max_sessions(args.max_sessions)
    except ValueError as exc:
        print(f"camera-sim: {exc}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.max_sessions) - set(camera_ids))
    if unknown:
        print(f"camera-sim: --max-sessions names unknown cameras: {unknown}", file=sys.stderr)
        return 2
    try:
        default = StreamSpec(args.codec, args.bframes, args.slices, args.audio)
        specs = parse_camera_streams(args.camera_stream, default)
    except ValueError as exc:
        print(f"camera-sim: {exc}", file=sys.stderr)
        return 2
    unknown = sorted(set(specs) - set(camera_ids))
    if unknown:
        print(f"camera-sim: --camera-stream names unknown cameras: {unknown}", file=sys.stderr)
        return 2
    specs = {cid: specs.get(cid, default) for cid in camera_ids}
    gop = _gop_frames(args.gop, args.fps)
    clip_frames = max(1, round(args.clip_seconds * args.fps / gop)) * gop
    clips: dict[str, Clip] = {}
    by_params: dict[ClipParams, Clip] = {}
    cached = True
    for cid, spec in specs.items():
        params = ClipParams(
            args.width, args.height, args.fps, gop, args.bitrate, clip_frames,
            spec.codec, spec.bframes, spec.slices,
        )  # fmt: skip
        if params not in by_params:
            by_params[params], hit = load_or_encode(params, args.cache_dir or default_cache_dir())
            cached = cached and hit
        clips[cid] = by_params[params]
    audio = {
        cid: None if spec.audio == "none" else AudioTrack.make(spec.audio, args.fps, gop)
        for cid, spec in specs.items()
    }
    t_clip = time.monotonic()

    sim = Simulator(args, clips, audio, camera_ids,
                    {cid: spec.clock_ppm for cid, spec in specs.items()})
    loop = GLib.MainLoop()
    source_id = sim.server.attach(None)
    if source_id == 0:
        print(f"camera-sim: cannot listen on {args.bind}:{args.rtsp_port}", file=sys.stderr)
        return 1
    rtsp_port = sim.server.get_bound_port()
    try:
        httpd = serve_control(sim, args.bind, args.control_port)
    except OSError as exc:
        print(f"camera-sim: control port {args.control_port}: {exc}", file=sys.stderr)
        return 1
    sim.ticker.start()

    def quit_loop(*_a: Any) -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, quit_loop)
    ready = {
        "rtsp_port": rtsp_port,
        "control_port": httpd.server_address[1],
        "bind": args.bind,
        "cameras": camera_ids,
        "pid": os.getpid(),
        "log_dir": str(args.log_dir) if args.log_dir else None,
        "clip_cached": cached,
        "clip_seconds_to_ready": round(t_clip - t0, 3),
        "seconds_to_ready": round(time.monotonic() - t0, 3),
        "clip_kbps": round(min(c.mean_bitrate_kbps for c in clips.values())),
        "streams": {cid: stream_spec_text(spec) for cid, spec in specs.items()},
        "gop_frames": gop,
        "fps": args.fps,
    }
    print(READY_PREFIX + json.dumps(ready), flush=True)
    try:
        loop.run()
    finally:
        httpd.shutdown()
        sim.stop()
        for cid in camera_ids:
            for client in sim.clients_of(cid):
                client.close()
    return 0
