"""Pre-encoded H.264 clips, made once per parameter set and cached on disk.

Encoding 32 live 1080p streams would need far more than the 2 cores the tests run on, so every
camera loops the same short clip. The clip is a whole number of GOPs, each starting with an IDR that
carries its own SPS/PPS, single slice, no B-frames (so decode order equals presentation order and
a loop seam is just another GOP boundary). Runs only under Debian's python (needs gi/GStreamer).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst  # noqa: E402

from hotspare.camerasim.sei import first_vcl_offset, iter_annexb_nals  # noqa: E402

CLIP_FORMAT = 1
_MAGIC = b"HSCLIP01"


@dataclass(frozen=True, slots=True)
class ClipParams:
    """Everything that changes the encoded bytes; its hash names the cache file."""

    width: int
    height: int
    fps: int
    gop_frames: int
    bitrate_kbps: int
    clip_frames: int

    def cache_key(self) -> str:
        blob = json.dumps(
            {**asdict(self), "format": CLIP_FORMAT, "gst": Gst.version_string()}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Clip:
    """Access units in decode order plus what the server needs to splice tags in cheaply."""

    params: ClipParams
    access_units: list[bytes]
    vcl_offsets: list[int]  # where the tag SEI goes in each AU (before the first slice)
    keyframes: list[bool]
    parameter_sets: bytes  # SPS+PPS in Annex-B, prepended when a stream starts mid-GOP

    @property
    def mean_bitrate_kbps(self) -> float:
        total = sum(len(au) for au in self.access_units)
        return total * 8 * self.params.fps / len(self.access_units) / 1000


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "hotspare-camsim-cache"


def load_or_encode(params: ClipParams, cache_dir: Path) -> tuple[Clip, bool]:
    """The clip for params, and whether it came from the cache (startup time depends on it)."""
    path = (
        cache_dir / f"clip-{params.width}x{params.height}-{params.fps}fps-{params.cache_key()}.bin"
    )
    if path.exists():
        try:
            return _from_aus(params, _read(path)), True
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a torn or stale file: make it again
    aus = encode(params)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, aus)
    return _from_aus(params, aus), False


def encode(params: ClipParams) -> list[bytes]:
    """Encode with x264enc; the picture moves and carries noise so the bitrate is really spent."""
    w, h, fps, n = params.width, params.height, params.fps, params.clip_frames
    raw = f"video/x-raw,width={w},height={h},framerate={fps}/1"
    # x264's defaults would insert scene-cut IDRs and slice the frame with sliced-threads; both
    # would break "an IDR exactly at each GOP start" and FFmpeg's decode of our RTSP stream.
    desc = (
        f"videotestsrc pattern=smpte horizontal-speed=6 num-buffers={n} ! {raw} ! "
        "compositor name=mix sink_1::alpha=0.22 ! videoconvert ! video/x-raw,format=I420 ! "
        f"x264enc bitrate={params.bitrate_kbps} key-int-max={params.gop_frames} bframes=0 "
        "speed-preset=veryfast pass=cbr vbv-buf-capacity=1000 sliced-threads=false "
        "byte-stream=true "
        f"option-string=scenecut=0:repeat-headers=1:min-keyint={params.gop_frames} ! "
        "video/x-h264,profile=high ! h264parse ! "
        "video/x-h264,stream-format=byte-stream,alignment=au ! "
        "appsink name=out sync=false max-buffers=0 emit-signals=false "
        f"videotestsrc pattern=snow num-buffers={n} ! {raw} ! mix."
    )
    pipeline = Gst.parse_launch(desc)
    sink = pipeline.get_by_name("out")
    pipeline.set_state(Gst.State.PLAYING)
    aus: list[bytes] = []
    try:
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:
                break
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            if not ok:
                raise RuntimeError("could not map an encoded buffer")
            try:
                aus.append(bytes(info.data))
            finally:
                buf.unmap(info)
        bus = pipeline.get_bus()
        msg = bus.pop_filtered(Gst.MessageType.ERROR)
        if msg is not None:
            err, dbg = msg.parse_error()
            raise RuntimeError(f"clip encode failed: {err.message} ({dbg})")
    finally:
        pipeline.set_state(Gst.State.NULL)
    if len(aus) != n:
        raise RuntimeError(f"encoder gave {len(aus)} access units, expected {n}")
    return aus


def _from_aus(params: ClipParams, aus: list[bytes]) -> Clip:
    if len(aus) != params.clip_frames or not aus:
        raise ValueError("clip frame count does not match its parameters")
    keyframes: list[bool] = []
    offsets: list[int] = []
    sps_pps = b""
    for i, au in enumerate(aus):
        types = [au[s] & 0x1F for s, _ in iter_annexb_nals(au)]
        keyframes.append(5 in types)
        offsets.append(first_vcl_offset(au))
        if i == 0:
            sps_pps = b"".join(
                b"\x00\x00\x00\x01" + au[s:e]
                for s, e in iter_annexb_nals(au)
                if au[s] & 0x1F in (7, 8)
            )
        if (i % params.gop_frames == 0) != keyframes[-1]:
            raise ValueError(f"access unit {i}: IDRs do not sit exactly on GOP starts")
    if not sps_pps:
        raise ValueError("first access unit carries no SPS/PPS")
    return Clip(params, aus, offsets, keyframes, sps_pps)


def _read(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if data[:8] != _MAGIC:
        raise ValueError("not a clip file")
    (count,) = struct.unpack_from(">I", data, 8)
    pos = 12
    aus: list[bytes] = []
    for _ in range(count):
        (size,) = struct.unpack_from(">I", data, pos)
        pos += 4
        aus.append(data[pos : pos + size])
        pos += size
    if pos != len(data):
        raise ValueError("clip file has trailing or missing bytes")
    return aus


def _write_atomically(path: Path, aus: list[bytes]) -> None:
    """Several sims may start at once with a cold cache: each writes its own temp file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + struct.pack(">I", len(aus)))
            for au in aus:
                f.write(struct.pack(">I", len(au)))
                f.write(au)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
