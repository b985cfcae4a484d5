"""The simulator's command-line options, stdlib only.

Shared by the simulator itself (Debian's python) and `hotspare camera-sim` (the venv), which
validates the options before handing them over, so that `--help` and typos behave the same in both.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

_SIM_DEST_PREFIX = "sim_"
READY_PREFIX = "HOTSPARE_CAMSIM_READY "
"""Start of the one stdout line that says the sim serves; the rest of the line is JSON."""


def _opt(p: argparse.ArgumentParser, flag: str, **kw: Any) -> None:
    """Prefix dests so that these options cannot collide with `hotspare`'s own parser's."""
    name = flag.lstrip("-")
    kw.setdefault("metavar", name.upper().replace("-", "_"))
    p.add_argument(flag, dest=_SIM_DEST_PREFIX + name.replace("-", "_"), **kw)


def _session_limits(text: str) -> str:
    """Check `ID=N[,ID=N]` here, so that `hotspare camera-sim` rejects a typo before the sim starts.

    The text itself is kept (not the parsed pairs) so that to_argv hands it on unchanged.
    """
    try:
        parse_max_sessions([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def parse_max_sessions(values: Sequence[str] | None) -> dict[str, int]:
    """`["cam-1=1", "door=2,yard=0"]` -> `{"cam-1": 1, "door": 2, "yard": 0}`; ValueError if bad."""
    limits: dict[str, int] = {}
    for value in values or ():
        for part in value.split(","):
            if not part.strip():
                continue
            cid, sep, num = part.strip().rpartition("=")
            if not sep or not cid:
                raise ValueError(f"session limit {part!r} is not CAMERA_ID=N")
            try:
                limit = int(num)
            except ValueError:
                raise ValueError(f"session limit {part!r}: N must be a whole number") from None
            if limit < 0:
                raise ValueError(f"session limit {part!r}: N must not be negative")
            limits[cid] = limit
    return limits


CODECS = ("h264", "h265")
AUDIO_CODECS = ("none", "pcmu", "pcma", "aac")
MAX_BFRAMES = 4
MAX_SLICES = 8
MAX_CLOCK_PPM = 100_000


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What one camera sends besides its resolution: real cameras differ in exactly these."""

    codec: str = "h264"
    bframes: int = 0
    slices: int = 1
    audio: str = "none"
    clock_ppm: int = 0
    """How fast the camera's RTP clock runs against true time (parts per million; negative:
    slow) while its RTCP sender reports stay true, like a camera whose encoder clock drifts
    from its NTP-disciplined wall clock (docs/camera-sim.md, *Clock drift*)."""

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r}: must be one of {', '.join(CODECS)}")
        if not 0 <= self.bframes <= MAX_BFRAMES:
            raise ValueError(f"bframes {self.bframes}: must be 0..{MAX_BFRAMES}")
        if not 1 <= self.slices <= MAX_SLICES:
            raise ValueError(f"slices {self.slices}: must be 1..{MAX_SLICES}")
        if self.audio not in AUDIO_CODECS:
            raise ValueError(f"audio {self.audio!r}: must be one of {', '.join(AUDIO_CODECS)}")
        if abs(self.clock_ppm) > MAX_CLOCK_PPM:
            raise ValueError(f"clock_ppm {self.clock_ppm}: must be within ±{MAX_CLOCK_PPM}")


def parse_stream_spec(text: str, base: StreamSpec | None = None) -> StreamSpec:
    """`codec=h265,bframes=2,slices=4,audio=pcmu` (any subset) on top of base; ValueError if bad."""
    spec = base or StreamSpec()
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise ValueError(f"stream option {part!r} is not KEY=VALUE")
        if key == "codec":
            spec = replace(spec, codec=value)
        elif key == "audio":
            spec = replace(spec, audio=value)
        elif key == "clock_ppm":
            if not value.removeprefix("-").isdigit():
                raise ValueError(f"stream option {part!r}: must be a whole number")
            spec = replace(spec, clock_ppm=int(value))
        elif key in ("bframes", "slices"):
            if not value.isdigit():
                raise ValueError(f"stream option {part!r}: must be a whole number")
            if key == "slices":
                spec = replace(spec, slices=int(value))
            else:
                spec = replace(spec, bframes=int(value))
        else:
            raise ValueError(
                f"stream option {key!r}: known are codec, bframes, slices, audio, clock_ppm"
            )
    return spec


def parse_camera_streams(
    values: Sequence[str] | None, base: StreamSpec
) -> dict[str, StreamSpec]:
    """`["cam-2:codec=h265", "door:bframes=2,audio=aac"]` -> per-camera specs over base."""
    specs: dict[str, StreamSpec] = {}
    for value in values or ():
        cid, sep, text = value.partition(":")
        if not sep or not cid:
            raise ValueError(f"camera stream {value!r} is not CAMERA_ID:KEY=VALUE[,KEY=VALUE]")
        specs[cid] = parse_stream_spec(text, specs.get(cid, base))
    return specs


def stream_spec_text(spec: StreamSpec) -> str:
    """The inverse of parse_stream_spec, for passing a spec on as a command-line option."""
    text = f"codec={spec.codec},bframes={spec.bframes},slices={spec.slices},audio={spec.audio}"
    return text + (f",clock_ppm={spec.clock_ppm}" if spec.clock_ppm else "")


def camera_stream_args(streams: Mapping[str, StreamSpec | str]) -> list[str]:
    """`--camera-stream` options for the given cameras (specs or their text)."""
    args: list[str] = []
    for cid, spec in streams.items():
        text = spec if isinstance(spec, str) else stream_spec_text(spec)
        args += ["--camera-stream", f"{cid}:{text}"]
    return args


def _camera_stream(text: str) -> str:
    try:
        parse_camera_streams([text], StreamSpec())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def add_sim_arguments(p: argparse.ArgumentParser) -> None:
    _opt(
        p,
        "--cameras",
        type=int,
        default=1,
        help="number of cameras, named cam-1..cam-N (default 1)",
    )
    _opt(p, "--camera-ids", default=None, help="comma-separated camera ids (overrides --cameras)")
    _opt(p, "--width", type=int, default=1920)
    _opt(p, "--height", type=int, default=1080)
    _opt(p, "--fps", type=int, default=25)
    _opt(p, "--gop", default="1s", help="GOP length in frames (50) or seconds (2s); default 1s")
    _opt(p, "--bitrate", type=int, default=4000, help="kbit/s (default 4000)")
    _opt(p, "--codec", choices=CODECS, default="h264", help="video codec (default h264)")
    _opt(
        p,
        "--bframes",
        type=int,
        choices=range(MAX_BFRAMES + 1),
        default=0,
        help="B-frames between references, no pyramid (default 0)",
    )
    _opt(
        p,
        "--slices",
        type=int,
        choices=range(1, MAX_SLICES + 1),
        default=1,
        help="slices per frame (default 1)",
    )
    _opt(
        p,
        "--audio",
        choices=AUDIO_CODECS,
        default="none",
        help="audio track: G.711 pcmu/pcma at 8 kHz or AAC-LC at 16 kHz, a 1 kHz beep during "
        "every keyframe's frame interval, silence otherwise (default none)",
    )
    _opt(
        p,
        "--camera-stream",
        action="append",
        type=_camera_stream,
        default=None,
        metavar="ID:KEY=VALUE,...",
        help="per-camera codec/bframes/slices/audio over the options above, e.g. "
        "cam-2:codec=h265,bframes=2 (repeatable); also clock_ppm=N: the camera's RTP clock runs "
        "N ppm fast (negative: slow) while its RTCP sender reports stay true",
    )
    _opt(
        p,
        "--clip-seconds",
        type=float,
        default=4.0,
        help="length of the looped pre-encoded clip, rounded to whole GOPs",
    )
    _opt(
        p,
        "--rtcp-interval",
        type=float,
        default=1.0,
        help="minimum RTCP sender-report interval in seconds (default 1)",
    )
    _opt(p, "--bind", default="127.0.0.1")
    _opt(
        p,
        "--rtsp-port",
        type=int,
        default=8554,
        help="0 picks a free port (reported on the READY line)",
    )
    _opt(
        p, "--control-port", type=int, default=0, help="HTTP control API port; 0 picks a free port"
    )
    _opt(p, "--log-dir", type=Path, default=None, help="write <camera-id>.jsonl frame logs here")
    _opt(
        p,
        "--cache-dir",
        type=Path,
        default=None,
        help="encoded clip cache (default: <tmp>/hotspare-camsim-cache)",
    )
    _opt(
        p,
        "--max-sessions",
        action="append",
        type=_session_limits,
        default=None,
        metavar="ID=N",
        help="at most N concurrent RTSP sessions on camera ID, more get 503 (repeatable; "
        "ID=N,ID=N also works; default: no limit)",
    )


def to_argv(ns: argparse.Namespace) -> list[str]:
    """Options as given (defaults included), to pass on to the simulator process."""
    argv: list[str] = []
    for dest, value in vars(ns).items():
        if not dest.startswith(_SIM_DEST_PREFIX) or value is None:
            continue
        flag = "--" + dest[len(_SIM_DEST_PREFIX) :].replace("_", "-")
        for item in value if isinstance(value, list) else [value]:  # append-options repeat
            argv += [flag, str(item)]
    return argv


def build_parser(prog: str = "python -m hotspare.camerasim") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Simulated RTSP cameras whose every frame carries a numbered SEI tag.",
    )
    add_sim_arguments(p)
    return p
