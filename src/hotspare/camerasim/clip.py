"""Pre-encoded H.264/H.265 clips, made once per parameter set and cached on disk.

Encoding 32 live 1080p streams would need far more than the 2 cores the tests run on, so every
camera loops the same short clip. The clip is a whole number of closed GOPs, each starting with an
IDR that carries its own parameter sets, so a loop seam is just another GOP boundary, also with
B-frames (they reorder frames only inside their GOP). Runs only under Debian's python (needs
gi/GStreamer).
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

from hotspare.camerasim.sei import first_vcl_offset  # noqa: E402
from hotspare.media.nal import is_vcl, iter_annexb_nals, nal_type  # noqa: E402

CLIP_FORMAT = 3
_MAGIC = b"HSCLIP02"
_PARAMETER_SETS = {"h264": (7, 8), "h265": (32, 33, 34)}  # SPS/PPS; VPS/SPS/PPS


@dataclass(frozen=True, slots=True)
class ClipParams:
    """Everything that changes the encoded bytes; its hash names the cache file."""

    width: int
    height: int
    fps: int
    gop_frames: int
    bitrate_kbps: int
    clip_frames: int
    codec: str = "h264"
    bframes: int = 0
    slices: int = 1

    def cache_key(self) -> str:
        blob = json.dumps(
            {**asdict(self), "format": CLIP_FORMAT, "gst": Gst.version_string()}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Clip:
    """Access units in decode order plus what the server needs to splice tags in cheaply."""

    params: ClipParams
    access_units: list[bytes]  # decode order
    presentation: list[int]  # each AU's frame index in presentation order, within the clip
    vcl_offsets: list[int]  # where the tag SEI goes in each AU (before the first slice)
    keyframes: list[bool]
    parameter_sets: bytes  # (VPS+)SPS+PPS in Annex-B, prepended when a stream starts mid-GOP

    @property
    def lookahead(self) -> int:
        """Frames an AU may be sent after its capture: a reference frame goes out before the
        B-frames shown ahead of it, so the camera must wait until it has captured it."""
        return max(0, *(p - d for d, p in enumerate(self.presentation)))

    @property
    def reorder_delay(self) -> int:
        """Frames a decoder holds back (how far DTS lags PTS at most); 0 without B-frames."""
        return max(0, *(d - p for d, p in enumerate(self.presentation)))

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
            aus, presentation = _read(path)
            return _from_aus(params, aus, presentation), True
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a torn or stale file: make it again
    aus, presentation = encode(params)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, aus, presentation)
    return _from_aus(params, aus, presentation), False


def _encoder(params: ClipParams) -> str:
    """The encoder part of the pipeline: CBR, an IDR exactly at each GOP start, closed GOPs.

    The encoders' defaults would insert scene-cut IDRs (x264, x265), open GOPs (x265) and adapt
    the B-frame count to the content; all would break "an IDR exactly at each GOP start" or make
    the stream depend on the picture. B-frames come without pyramid (no B-frame is a reference).
    """
    gop, b = params.gop_frames, params.bframes
    if params.codec == "h265":
        opts = (
            f"scenecut=0:min-keyint={gop}:open-gop=0:repeat-headers=1:bframes={b}:b-adapt=0:"
            f"b-pyramid=0:slices={params.slices}:vbv-maxrate={params.bitrate_kbps}:"
            f"vbv-bufsize={params.bitrate_kbps}:info=0:annexb=1"
        )
        return (
            f"x265enc bitrate={params.bitrate_kbps} key-int-max={gop} speed-preset=ultrafast "
            f"option-string={opts} ! h265parse ! "
            "video/x-h265,stream-format=byte-stream,alignment=au"
        )
    # sliced-threads would also slice the frame, but into as many slices as threads, so the
    # slice count would depend on the machine; slices= fixes it.
    return (
        f"x264enc bitrate={params.bitrate_kbps} key-int-max={gop} bframes={b} b-adapt=false "
        "b-pyramid=false speed-preset=veryfast pass=cbr vbv-buf-capacity=1000 "
        "sliced-threads=false byte-stream=true "
        f"option-string=scenecut=0:repeat-headers=1:min-keyint={gop}:slices={params.slices} ! "
        "video/x-h264,profile=high ! h264parse ! "
        "video/x-h264,stream-format=byte-stream,alignment=au"
    )


def encode(params: ClipParams) -> tuple[list[bytes], list[int]]:
    """Access units in decode order and their presentation indexes; the picture moves and
    carries noise so the bitrate is really spent."""
    w, h, fps, n = params.width, params.height, params.fps, params.clip_frames
    raw = f"video/x-raw,width={w},height={h},framerate={fps}/1"
    desc = (
        f"videotestsrc pattern=smpte horizontal-speed=6 num-buffers={n} ! {raw} ! "
        "compositor name=mix sink_1::alpha=0.22 ! videoconvert ! video/x-raw,format=I420 ! "
        f"{_encoder(params)} ! appsink name=out sync=false max-buffers=0 emit-signals=false "
        f"videotestsrc pattern=snow num-buffers={n} ! {raw} ! mix."
    )
    pipeline = Gst.parse_launch(desc)
    sink = pipeline.get_by_name("out")
    pipeline.set_state(Gst.State.PLAYING)
    aus: list[bytes] = []
    pts: list[int] = []
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
                pts.append(buf.pts)
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
    if any(p == Gst.CLOCK_TIME_NONE for p in pts):
        raise RuntimeError("encoder gave an access unit without a presentation time")
    frame_ns = Gst.SECOND // fps
    presentation = [round((p - min(pts)) / frame_ns) for p in pts]
    return [_each_set_once(au, params.codec) for au in aus], presentation


def _each_set_once(au: bytes, codec: str) -> bytes:
    """The access unit with each kind of parameter set once, its last copy. x265enc puts the
    headers twice in the first access unit, and the first copy of the PPS sometimes carries
    stray bytes after its end (seen: 12 zero bytes and `d1 09`, on some encodes only): a
    recorder comparing parameter sets then sees the camera change them at every clip loop, a
    simulator artifact (a real encoder's repeated headers are byte-identical)."""
    nals = [(s, e) for s, e in iter_annexb_nals(au)]
    first_vcl = next((i for i, (s, _) in enumerate(nals) if is_vcl(au[s], codec)), len(nals))
    kinds = _PARAMETER_SETS[codec]
    last = {nal_type(au[s], codec): i for i, (s, _) in enumerate(nals[:first_vcl])
            if nal_type(au[s], codec) in kinds}
    if len(last) == sum(1 for s, _ in nals[:first_vcl] if nal_type(au[s], codec) in kinds):
        return au
    kept = [(s, e) for i, (s, e) in enumerate(nals)
            if i >= first_vcl or nal_type(au[s], codec) not in kinds
            or last[nal_type(au[s], codec)] == i]
    return b"".join(b"\x00\x00\x00\x01" + au[s:e] for s, e in kept)


def _is_keyframe(codec: str, types: list[int]) -> bool:
    """An IDR picture (H.264 type 5; H.265 IDR_W_RADL/IDR_N_LP, 19/20)."""
    return 5 in types if codec == "h264" else bool({19, 20} & set(types))


def _from_aus(params: ClipParams, aus: list[bytes], presentation: list[int]) -> Clip:
    if len(aus) != params.clip_frames or not aus or len(presentation) != len(aus):
        raise ValueError("clip frame count does not match its parameters")
    codec = params.codec
    keyframes: list[bool] = []
    offsets: list[int] = []
    parameter_sets = b""
    for i, au in enumerate(aus):
        types = [nal_type(au[s], codec) for s, _ in iter_annexb_nals(au)]
        keyframes.append(_is_keyframe(codec, types))
        offsets.append(first_vcl_offset(au, codec))
        if i == 0:
            parameter_sets = b"".join(
                b"\x00\x00\x00\x01" + au[s:e]
                for s, e in iter_annexb_nals(au)
                if nal_type(au[s], codec) in _PARAMETER_SETS[codec]
            )
        if (i % params.gop_frames == 0) != keyframes[-1]:
            raise ValueError(f"access unit {i}: IDRs do not sit exactly on GOP starts")
        slices = sum(1 for s, _ in iter_annexb_nals(au) if is_vcl(au[s], codec))
        if slices != params.slices:
            raise ValueError(f"access unit {i} has {slices} slices, expected {params.slices}")
    gop = params.gop_frames
    for start in range(0, len(aus), gop):
        if sorted(presentation[start : start + gop]) != list(range(start, start + gop)):
            raise ValueError(f"GOP at access unit {start} is not closed (frames cross its ends)")
    if not parameter_sets:
        raise ValueError("first access unit carries no parameter sets")
    return Clip(params, aus, presentation, offsets, keyframes, parameter_sets)


def _read(path: Path) -> tuple[list[bytes], list[int]]:
    data = path.read_bytes()
    if data[:8] != _MAGIC:
        raise ValueError("not a clip file")
    (count,) = struct.unpack_from(">I", data, 8)
    pos = 12
    aus: list[bytes] = []
    presentation: list[int] = []
    for _ in range(count):
        size, pres = struct.unpack_from(">II", data, pos)
        pos += 8
        aus.append(data[pos : pos + size])
        presentation.append(pres)
        pos += size
    if pos != len(data):
        raise ValueError("clip file has trailing or missing bytes")
    return aus, presentation


def _write_atomically(path: Path, aus: list[bytes], presentation: list[int]) -> None:
    """Several sims may start at once with a cold cache: each writes its own temp file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + struct.pack(">I", len(aus)))
            for au, pres in zip(aus, presentation, strict=True):
                f.write(struct.pack(">II", len(au), pres))
                f.write(au)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
