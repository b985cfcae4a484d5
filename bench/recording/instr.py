"""Instructions per camera-minute, by library, of the recorder and of ffmpeg on one camera.

    .venv/bin/python -m bench.recording.instr --seconds 30
    .venv/bin/python -m bench.recording.instr --variants default,no-index,pyav-remux,pyav-demux

This VM has no hardware counters, so the instructions are counted by valgrind's callgrind: each
contender (the recorder child per variant, and `ffmpeg -c copy -f segment`) runs under callgrind
on the same simulated camera, with counting switched on only over the window
(`callgrind_control -i on/off`), and its instructions are summed by the library they ran in
(FFmpeg's RTSP/RTP, mov muxer and I/O, its H.264 parser, the Python interpreter, PyAV, libc,
libcrypto's SHA-256, SQLite). Instructions do not depend on the machine's load, but a contender
that cannot keep up with the camera under valgrind (≈ 50× slower) handles fewer frames in the
window than the camera sent, so each count is divided by the frames the contender itself wrote
over the window (frames in its files at the end minus at the start; ffmpeg's own `-progress`
count) and scaled to 1 500 frames, a camera-minute at 25 fps. A variant that writes nothing
(`pyav-demux`) is scaled by the frames the camera sent instead (right only if it kept up).
Stripped libraries (PyAV's bundled FFmpeg, Debian's) name no function, so the split is by
library.

Not counted: the kernel (valgrind sees only user space; `--counts` of bench.recording counts the
system calls), and valgrind hides SHA-NI from the program, so OpenSSL's SHA-256 runs its generic
code here (more instructions than on the real CPU).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import REPO, LoadSampler, remove_work_dir, table, work_dir, write_result
from bench.recording.frames import frame_numbers
from bench.recording.run import FFMPEG, Sim, _terminate
from hotspare.store import mp4

FRAMES_PER_MINUTE = 25 * 60

# (pattern on "object:function", bucket), first match wins.
BUCKETS = (
    (r"libavformat.*:(mov_|ff_mov_|ff_isom|mov_write|ff_interleave|ff_write)", "FFmpeg mov muxer"),
    (r"libavformat.*:(avio_|ffio_|ff_get_v|io_|update_checksum)", "FFmpeg AVIO buffers"),
    (r"libavformat.*:(rtsp|ff_rtsp|rtp|ff_rtp|tcp_|ff_network|ffurl|url_|retry_transfer"
     r"|ff_poll|h264_handle|ff_h264_handle|hevc_handle)", "FFmpeg RTSP/RTP/TCP read"),
    (r"libavformat", "FFmpeg libavformat, other (demux core, packet queue)"),
    (r"libavcodec.*:(h264|hevc|ff_h2645|ff_combine|parser|ff_parse)", "FFmpeg H.264 parser"),
    (r"libavcodec", "FFmpeg libavcodec, other (packets, bsf)"),
    (r"libavutil", "FFmpeg libavutil (memory, dict, time)"),
    (r"libpython", "Python interpreter"),
    (r"/av/|\.cpython-3\d+.*\.so.*:.*(__pyx|pyx)", "PyAV (Cython)"),
    (r"libcrypto|_hashlib", "SHA-256 (libcrypto)"),
    (r"sqlite", "SQLite"),
    (r"libc\.so|libc-|libm\.so|libpthread", "libc (memcpy, malloc, syscall stubs)"),
    (r"ld-linux|ld-2", "dynamic loader"),
    (r"/ffmpeg\]|/ffmpeg:|bin/ffmpeg", "ffmpeg program (fftools)"),
    (r"lib-dynload|\.cpython-3", "Python extension modules"),
)

_ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?):(\S+)\s+\[(.*)\]\s*$")


def bucket_of(obj: str, fn: str) -> str:
    key = f"{obj}:{fn}"
    return next((name for pattern, name in BUCKETS if re.search(pattern, key)), "other")


def instructions_by_bucket(out_file: Path) -> tuple[Counter[str], Counter[str]]:
    """(bucket → instructions, "object:function" → instructions) from a callgrind dump."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--inclusive=no", str(out_file)],
        capture_output=True, text=True, check=True,
    ).stdout
    buckets: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for line in text.splitlines():
        m = _ANNOTATE_LINE.match(line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        obj, fn = Path(m.group(4)).name, m.group(3)
        buckets[bucket_of(m.group(4), fn)] += ir
        functions[f"{obj}:{fn}"] += ir
    return buckets, functions


def frames_on_disk(root: Path) -> int:
    """Frames in the complete fragments of every segment file under `root` (open files too)."""
    total = 0
    for path in root.rglob("*.mp4"):
        try:
            total += mp4.parse_path(path).frame_count
        except (mp4.Mp4Error, OSError):
            continue
    return total


def ffmpeg_frames(progress: Path) -> int:
    """The last `frame=` ffmpeg's `-progress` file reported."""
    try:
        found = re.findall(r"^frame=(\d+)", progress.read_text(), re.M)
    except OSError:
        return 0
    return int(found[-1]) if found else 0


def _valgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            "--dump-instr=no", "--collect-jumps=no"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recording.instr", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="counted window")
    p.add_argument("--warmup", type=float, default=20.0,
                   help="seconds after every contender is recording (valgrind starts slowly)")
    p.add_argument("--variants", default="default",
                   help="recorder variants (bench/recording/recorder_child.py), each under "
                   "callgrind beside ffmpeg")
    p.add_argument("--bitrate", type=int, default=4000)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    started = dt.datetime.now(dt.UTC)
    sampler = LoadSampler().__enter__()
    work = work_dir("recording-instr")
    sim = Sim(work, 1, 1920, 1080, args.bitrate)
    cam = sim.ids[0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")]))
    procs: dict[str, subprocess.Popen[Any]] = {}
    outs: dict[str, Path] = {}

    def written_frames() -> dict[str, int]:
        counts = {v: frames_on_disk(work / f"store-{v}") for v in variants
                  if not v.startswith("pyav-demux")}
        counts["ffmpeg"] = ffmpeg_frames(work / "ffmpeg.progress")
        return counts

    try:
        for v in variants:
            outs[v] = work / f"cg-{v}.out"
            procs[v] = subprocess.Popen(
                [*_valgrind(outs[v]), sys.executable, "-m", "bench.recording.recorder_child",
                 "--store", str(work / f"store-{v}"), "--variant", v, "--segment-seconds", "4",
                 f"{cam}={sim.url(cam)}"],
                cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
                stderr=(work / f"{v}.stderr").open("w"),
            )  # fmt: skip
        (work / "ffmpeg").mkdir()
        outs["ffmpeg"] = work / "cg-ffmpeg.out"
        procs["ffmpeg"] = subprocess.Popen(
            [*_valgrind(outs["ffmpeg"]), FFMPEG, "-nostdin", "-loglevel", "error",
             "-progress", str(work / "ffmpeg.progress"), "-stats_period", "0.2",
             "-rtsp_transport", "tcp", "-i", sim.url(cam), "-c", "copy", "-f", "segment",
             "-segment_time", "4", "-reset_timestamps", "1", str(work / "ffmpeg" / "out%05d.mp4")],
            stderr=(work / "ffmpeg.stderr").open("w"),
        )  # fmt: skip
        for v in variants:  # the child prints RECORDING once its cameras are started
            stdout = procs[v].stdout
            assert stdout is not None
            if "RECORDING" not in stdout.readline():
                raise RuntimeError(f"variant {v} did not start; see {work / (v + '.stderr')}")
        time.sleep(args.warmup)
        print(f"counting {args.seconds:g} s", flush=True)
        t0_wall = time.time_ns() // 1000
        for proc in procs.values():
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)],
                           capture_output=True, check=False)
        frames0 = written_frames()
        t0 = time.monotonic()
        time.sleep(args.seconds)
        for proc in procs.values():
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)],
                           capture_output=True, check=False)
        frames1 = written_frames()
        window = time.monotonic() - t0
        t1_wall = time.time_ns() // 1000
        for name, proc in procs.items():
            proc.send_signal(signal.SIGINT if name == "ffmpeg" else signal.SIGTERM)
        _terminate(list(procs.values()), signal.SIGTERM, 120.0)
        time.sleep(1.5)
    finally:
        _terminate(list(procs.values()), signal.SIGKILL, 5.0)
        sim.stop()
    delivered = {f for f, w in sim.delivered_walls(cam).items() if t0_wall <= w < t1_wall}
    rows: list[dict[str, Any]] = []
    for name, out in outs.items():
        files = (sorted((work / "ffmpeg").glob("*.mp4")) if name == "ffmpeg"
                 else sorted((work / f"store-{name}" / "segments").rglob("*.mp4")))
        stored = set(frame_numbers(files)) & delivered if files else set()
        buckets, functions = instructions_by_bucket(out)
        processed = frames1[name] - frames0[name] if name in frames1 else None
        scale = FRAMES_PER_MINUTE / max(1, processed or len(delivered))
        rows.append({
            "tool": "hotspare" if name == "default" else name if name == "ffmpeg" else f"hs:{name}",
            "frames_in_window": len(delivered),
            "frames_stored": len(stored) if files else None,
            "frames_written_in_window": processed,
            "instructions_per_camera_minute": round(sum(buckets.values()) * scale),
            "by_bucket": {k: round(v * scale) for k, v in buckets.most_common()},
            "top_functions": {k: round(v * scale) for k, v in functions.most_common(25)},
        })  # fmt: skip
    load = sampler.stop()
    print(report(rows))
    write_result("recording-instr", {
        "camera": {"width": 1920, "height": 1080, "fps": 25, "gop_s": 1,
                   "bitrate_kbps": args.bitrate},
        "window_seconds": round(window, 1), "variants": variants,
        "counted_by": "valgrind callgrind (user-space instructions; SHA-NI hidden by valgrind)",
        "results": rows,
    }, started=started, load=load, quick=False, out=args.out,
        tools={"ffmpeg": FFMPEG})  # fmt: skip
    remove_work_dir(work, args.keep)
    return 0


def report(rows: list[dict[str, Any]]) -> str:
    """Millions of instructions per camera-minute by bucket, one column per contender."""
    tools = [r["tool"] for r in rows]
    buckets = sorted({b for r in rows for b in r["by_bucket"]},
                     key=lambda b: -max(r["by_bucket"].get(b, 0) for r in rows))
    lines = [[b, *(f"{r['by_bucket'].get(b, 0) / 1e6:.0f}" for r in rows)] for b in buckets]
    lines.append(["total (M instructions / camera-minute)",
                  *(f"{r['instructions_per_camera_minute'] / 1e6:.0f}" for r in rows)])
    lines.append(["frames written in the window (the divisor)",
                  *(str(r["frames_written_in_window"] or f"({r['frames_in_window']} sent)")
                    for r in rows)])
    lines.append(["frames of the window stored / sent",
                  *(f"{r['frames_stored']}/{r['frames_in_window']}"
                    if r["frames_stored"] is not None else "-" for r in rows)])
    return table(["bucket", *tools], lines)


if __name__ == "__main__":
    sys.exit(main())
