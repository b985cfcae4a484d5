"""Benchmark: record the same simulated cameras with hotspare and with ffmpeg, side by side.

    .venv/bin/python -m bench.recording               # 1, 8, 32 cameras, 60 s each
    .venv/bin/python -m bench.recording --quick       # 1, 8, 32 cameras, 20 s each
    .venv/bin/python bench/recording/run.py --cameras 8 --seconds 30
    .venv/bin/python -m bench.recording --sweep 1,4,8,16,32,64   # cost against size, JSON + PNG
    .venv/bin/python -m bench.recording --counts --variants default,no-index,pyav-remux,pyav-demux

For each camera count one simulator (1080p25, 4 Mbit/s, 1 s GOP) serves both contenders at once:
(a) one hotspare recorder process (PyAV in process, one thread per camera) into a temporary
SegmentStore, and (b) one `ffmpeg -c copy -f segment` process per camera — the alternative engine
of design decision 1 (docs/design.md). CPU and peak RSS are read from /proc over the same window
(Linux only); frames are counted from the SEI tags in the written files against the simulator's
frame log.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import (
    MB,
    REPO,
    LoadSampler,
    first_line,
    remove_work_dir,
    result_path,
    table,
    total_cpu_seconds,
    total_peak_rss_bytes,
    work_dir,
    write_result,
)
from bench.plot import plot_panels
from bench.recording.counts import (
    Counts,
    PerfStat,
    counts_table,
    parts,
    parts_table,
    read_thread_names,
    thread_cpu,
    threads_split,
    to_counts,
)
from bench.recording.frames import frame_numbers
from hotspare.camerasim.framelog import log_path, read_frame_log
from hotspare.camerasim.interpreter import sim_command, sim_env
from hotspare.camerasim.options import READY_PREFIX

FFMPEG = os.environ.get("HOTSPARE_BENCH_FFMPEG", "/usr/bin/ffmpeg")


@dataclass
class ToolResult:
    cameras: int
    tool: str
    cpu_s: float
    window_s: float
    cpu_s_per_camera_minute: float
    peak_rss_mb_total: float
    peak_rss_mb_per_camera: float
    frames_recorded: int
    frames_delivered: int
    frames_duplicated: int
    processes: int


# ------------------------------------------------------------------------------------ processes


class Sim:
    """The camera simulator as a child process (Debian python + GStreamer)."""

    def __init__(self, work: Path, cameras: int, width: int, height: int, bitrate: int) -> None:
        self.log_dir = work / "frames"
        self.ids = [f"cam-{i}" for i in range(1, cameras + 1)]
        args = [
            "--camera-ids", ",".join(self.ids), "--width", str(width), "--height", str(height),
            "--fps", "25", "--gop", "1s", "--bitrate", str(bitrate), "--rtsp-port", "0",
            "--log-dir", str(self.log_dir),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            sim_command(args),
            env=sim_env(),
            stdout=subprocess.PIPE,
            stderr=(work / "sim.stderr").open("w"),
            text=True,
            start_new_session=True,
        )
        ready = self._wait_ready(180.0)
        self.port = int(ready["rtsp_port"])

    def _wait_ready(self, timeout: float) -> dict[str, Any]:
        box: list[str] = []
        got = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith(READY_PREFIX) and not box:
                    box.append(line[len(READY_PREFIX) :])
                    got.set()
            got.set()

        threading.Thread(target=drain, daemon=True).start()
        if not got.wait(timeout) or not box:
            self.stop()
            raise RuntimeError("camera simulator did not start; see sim.stderr")
        return dict(json.loads(box[0]))

    def url(self, camera_id: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{camera_id}"

    def delivered_walls(self, camera_id: str) -> dict[int, int]:
        """frame number → capture wall time (µs) of every frame the sim delivered."""
        path = log_path(self.log_dir, camera_id)
        return {r.frame: r.wall_us for r in read_frame_log(path) if r.delivered}

    def stop(self) -> None:
        _terminate([self.proc], signal.SIGTERM, 15.0)


def _terminate(procs: list[subprocess.Popen[Any]], sig: int, timeout: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(30.0)
            except subprocess.TimeoutExpired:  # a machine too loaded to reap it: leave it
                print(f"   process {p.pid} did not end after SIGKILL within 30 s", flush=True)


# ------------------------------------------------------------------------------------ one scenario


def _start_perf(out: Path | None, pids: list[int], seconds: float) -> subprocess.Popen[Any] | None:
    """`perf record -g` of the first hotspare variant and the ffmpeg children over the window
    (bench/recording/perf_split.py reads it)."""
    if out is None:
        return None
    return subprocess.Popen(
        ["perf", "record", "-F", "499", "-g", "-o", str(out), "-p", ",".join(map(str, pids)),
         "--", "sleep", str(seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _hotspare_files(store_root: Path, camera_id: str) -> list[Path]:
    return sorted((store_root / "segments" / camera_id).rglob("*.mp4"))


def _ffmpeg_files(root: Path, camera_id: str) -> list[Path]:
    return sorted((root / camera_id).glob("*.mp4"))


def _name(variant: str) -> str:
    return "hotspare" if variant == "default" else f"hs:{variant}"


def run_scenario(
    cameras: int, seconds: float, warmup: float, args: argparse.Namespace, work: Path
) -> tuple[list[ToolResult], list[Counts]]:
    work.mkdir(parents=True, exist_ok=True)
    print(f"-- {cameras} cameras: starting simulator", flush=True)
    sim = Sim(work, cameras, args.width, args.height, args.bitrate)
    hs_dir, ff_dir = work / "hotspare-store", work / "ffmpeg"
    procs: list[subprocess.Popen[Any]] = []
    try:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")]))
        hs_procs: dict[str, subprocess.Popen[Any]] = {}
        for variant in args.variants:
            threads_file = ["--threads-file", str(work / f"threads-{variant}.json")]
            hs_procs[variant] = subprocess.Popen(
                [sys.executable, "-m", "bench.recording.recorder_child", "--store",
                 str(hs_dir / variant), "--variant", variant, "--segment-seconds", "4",
                 *(threads_file if args.counts else []),
                 *[f"{c}={sim.url(c)}" for c in sim.ids]],
                cwd=REPO, env=env, stdout=subprocess.PIPE,
                stderr=(work / f"hotspare-{variant}.stderr").open("w"), text=True,
            )  # fmt: skip
        procs.extend(hs_procs.values())
        ffs = []
        for c in sim.ids:
            out = ff_dir / c
            out.mkdir(parents=True)
            cmd = [FFMPEG, "-nostdin", "-loglevel", "error",
                   "-rtsp_transport", args.ffmpeg_transport, "-i", sim.url(c),
                   "-c", "copy", "-f", "segment", "-segment_time", "4",
                   "-reset_timestamps", "1", str(out / "out%05d.mp4")]  # fmt: skip
            stderr = (work / f"ffmpeg-{c}.stderr").open("w")
            ffs.append(subprocess.Popen(cmd, stderr=stderr))
        procs.extend(ffs)
        time.sleep(warmup)  # both connected and past their first keyframe
        ff_pids = [p.pid for p in ffs]
        t0_wall = time.time_ns() // 1000
        t0 = time.monotonic()
        pids = {_name(v): [p.pid] for v, p in hs_procs.items()}
        pids["ffmpeg"] = ff_pids
        pids["sim"] = [sim.proc.pid]
        stats: dict[str, PerfStat] = {}
        names: dict[str, dict[int, str]] = {}
        threads0: dict[str, dict[int, float]] = {}
        if args.counts:
            for tool, group in pids.items():
                if tool != "sim":
                    stats[tool] = PerfStat(group, work / f"perf-stat-{tool.replace(':', '-')}.csv")
            for v, p in hs_procs.items():
                threads0[_name(v)] = thread_cpu(p.pid)
        cpu0 = {k: total_cpu_seconds(v) for k, v in pids.items()}
        print(f"   recording {seconds:g} s", flush=True)
        perf = _start_perf(args.perf, [p.pid for p in hs_procs.values()][:1] + ff_pids, seconds)
        time.sleep(seconds)
        if perf is not None:
            perf.wait(30)
            args.perf = None  # only the first camera count is profiled
        cpu1 = {k: total_cpu_seconds(v) for k, v in pids.items()}
        raw = {tool: stat.stop() for tool, stat in stats.items()}
        threads1 = {tool: thread_cpu(pids[tool][0]) for tool in threads0}
        window = time.monotonic() - t0
        t1_wall = time.time_ns() // 1000
        for v in hs_procs:  # read after the window: a loaded child may write it late
            if _name(v) in threads0:
                names[_name(v)] = read_thread_names(work / f"threads-{v}.json")
        peaks = {k: total_peak_rss_bytes(v) for k, v in pids.items()}
        alive = {_name(v): int(p.poll() is None) for v, p in hs_procs.items()}
        alive["ffmpeg"] = sum(p.poll() is None for p in ffs)
        _terminate(list(hs_procs.values()), signal.SIGTERM, 40.0)
        _terminate(ffs, signal.SIGINT, 20.0)  # SIGINT: ffmpeg writes the last file's trailer
        time.sleep(1.5)  # the sim flushes its frame log about once a second
    finally:
        _terminate(procs, signal.SIGKILL, 5.0)
        sim.stop()
    print(f"   counting frames (sim used {cpu1['sim'] - cpu0['sim']:.1f} s CPU)", flush=True)
    results = []
    tools: list[tuple[str, Callable[[str], list[Path]]]] = [
        (_name(v), partial(_hotspare_files, hs_dir / v)) for v in args.variants
    ]
    tools.append(("ffmpeg", partial(_ffmpeg_files, ff_dir)))
    for tool, files_of in tools:
        recorded = delivered = dup = 0
        for c in sim.ids:
            walls = sim.delivered_walls(c)
            in_window = {f for f, w in walls.items() if t0_wall <= w < t1_wall}
            stored = frame_numbers(files_of(c))
            recorded += len(in_window & set(stored))
            if args.debug_missing and in_window - set(stored):
                lost = sorted(in_window - set(stored))
                print(f"   {tool} {c}: missing {lost[:20]} of {min(in_window)}..{max(in_window)}")
            delivered += len(in_window)
            dup += sum(n - 1 for f, n in stored.items() if n > 1)
        cpu = cpu1[tool] - cpu0[tool]
        results.append(
            ToolResult(
                cameras=cameras,
                tool=tool,
                cpu_s=round(cpu, 2),
                window_s=round(window, 1),
                cpu_s_per_camera_minute=round(cpu / cameras / (window / 60.0), 3),
                peak_rss_mb_total=round(peaks[tool] / MB, 1),
                peak_rss_mb_per_camera=round(peaks[tool] / MB / cameras, 1),
                frames_recorded=recorded,
                frames_delivered=delivered,
                frames_duplicated=dup,
                processes=alive[tool],
            )
        )
    counted = []
    shares = {r.tool: r.frames_recorded / r.frames_delivered for r in results
              if r.frames_delivered and not r.tool.startswith("hs:pyav-demux")}
    for tool, raw_counts in raw.items():
        tool_counts = to_counts(cameras, tool, raw_counts, window, shares.get(tool))
        if tool in threads0:
            tool_counts.threads_cpu_s = threads_split(threads0[tool], threads1[tool],
                                                      names[tool], cameras, window)
        counted.append(tool_counts)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return results, counted


# ------------------------------------------------------------------------------------------ report


def results_table(results: list[ToolResult]) -> str:
    """One row per camera count and contender; `CPU hs/ff` against ffmpeg at the same count."""
    ffmpeg = {r.cameras: r for r in results if r.tool == "ffmpeg"}
    rows = []
    for r in sorted(results, key=lambda r: (r.cameras, r.tool == "ffmpeg")):
        ff = ffmpeg.get(r.cameras)
        ratio = (f"{r.cpu_s / ff.cpu_s:.2f}x"
                 if ff is not None and r.tool != "ffmpeg" and ff.cpu_s > 0 else "")
        rows.append([r.cameras, r.tool, f"{r.cpu_s_per_camera_minute:.3f}",
                     f"{r.peak_rss_mb_total:.1f}", f"{r.peak_rss_mb_per_camera:.1f}",
                     f"{r.frames_recorded}/{r.frames_delivered}", r.frames_duplicated, ratio])
    return table(["cams", "tool", "CPU s/cam-min", "peak MB", "MB/cam", "frames rec/deliv",
                  "dup", "CPU hs/ff"], rows, align="rl")  # fmt: skip


def plot_sweep(results: list[ToolResult], path: Path) -> Path | None:
    """CPU per camera-minute, hotspare ÷ ffmpeg and peak MB per camera against the camera count,
    one line per contender (None when matplotlib is not installed)."""
    counts = sorted({r.cameras for r in results})
    tools = list(dict.fromkeys(r.tool for r in results))
    by = {(r.cameras, r.tool): r for r in results}

    def line(tool: str, value: Callable[[ToolResult], float]) -> list[float | None]:
        return [value(by[(n, tool)]) if (n, tool) in by else None for n in counts]

    def ratio(n: int, tool: str) -> float | None:
        hs, ff = by.get((n, tool)), by.get((n, "ffmpeg"))
        return None if hs is None or ff is None or ff.cpu_s <= 0 else hs.cpu_s / ff.cpu_s

    return plot_panels(path, counts, "cameras", [
        ("CPU s per camera-minute", {t: line(t, lambda r: r.cpu_s_per_camera_minute)
                                     for t in tools}),
        ("CPU hotspare / ffmpeg", {t: [ratio(n, t) for n in counts]
                                   for t in tools if t != "ffmpeg"}),
        ("peak MB per camera", {t: line(t, lambda r: r.peak_rss_mb_per_camera) for t in tools}),
    ], log_x=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.recording",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cameras", default="1,8,32", help="comma-separated camera counts")
    p.add_argument("--sweep", default=None, metavar="COUNTS",
                   help="a size sweep, e.g. 1,4,8,16,32,64: these camera counts instead of "
                   "--cameras, written as recording-sweep-<date>.json with a PNG of the cost "
                   "against the count")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window per count")
    p.add_argument("--quick", action="store_true", help="20 s windows (same camera counts)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before the window opens")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--bitrate", type=int, default=4000, help="kbit/s per camera")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/...)")
    p.add_argument(
        "--variants",
        default="default",
        help="comma-separated hotspare variants run side by side: default, no-flush, no-index, "
        "frag200, frag100, udp, and the bare PyAV loops pyav-demux, pyav-remux, pyav-remux200, "
        "pyav-demux-udp, pyav-demux-udp-interruptible, pyav-demux-udp-pyavtimeout (see "
        "bench/recording/recorder_child.py)",
    )
    p.add_argument("--ffmpeg-transport", choices=("tcp", "udp"), default="tcp",
                   help="RTSP transport of the ffmpeg baseline (the recorder's is per variant: "
                   "udp, pyav-demux-udp)")
    p.add_argument("--keep", action="store_true", help="keep recorded files (printed path)")
    p.add_argument("--debug-missing", action="store_true", help="print missing frame numbers")
    p.add_argument("--counts", action="store_true",
                   help="also count, per contender over the same window, CPU (task-clock), system "
                   "calls by kind, context switches and page faults per camera-minute (perf stat), "
                   "the recorder's CPU by thread, and with the variants pyav-demux,pyav-remux,"
                   "no-index,default the cost of each part (bench/recording/counts.py)")
    p.add_argument("--perf", type=Path, default=None,
                   help="perf record the first variant and ffmpeg over the first window into this "
                   "file (then: python -m bench.recording.perf_split FILE)")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not Path(FFMPEG).exists():
        print(f"{FFMPEG} not found (set HOTSPARE_BENCH_FFMPEG)", file=sys.stderr)
        return 2
    seconds = 20.0 if args.quick else args.seconds
    counts = [int(x) for x in (args.sweep or args.cameras).split(",") if x.strip()]
    started = dt.datetime.now(dt.UTC)
    sampler = LoadSampler().__enter__()
    print(f"hotspare recording bench: {counts} cameras, {seconds:g} s windows, variants "
          f"{','.join(args.variants)} vs ffmpeg; {sampler.line()}", flush=True)
    work_root = work_dir("recording")
    results: list[ToolResult] = []
    counted: list[Counts] = []
    try:
        for n in counts:
            res, cnt = run_scenario(n, seconds, args.warmup, args, work_root / f"{n}cams")
            results.extend(res)
            counted.extend(cnt)
            print(results_table(results), flush=True)
            if counted:
                print(counts_table(counted), flush=True)
    finally:
        load = sampler.stop()
        remove_work_dir(work_root, args.keep)
    print(f"\n{results_table(results)}\n\n{sampler.line()}")
    split = parts(counted)
    if counted:
        print(f"\nper camera-minute, same window (perf stat):\n{counts_table(counted)}")
    if split:
        print(f"\nthe recorder's parts (steps between variants):\n{parts_table(split)}")
    name = "recording-sweep" if args.sweep else "recording-counts" if args.counts else "recording"
    png = None
    if args.sweep:
        png = plot_sweep(results, result_path(name, args.quick, args.out).with_suffix(".png"))
        print(f"plot: {png}" if png else "plot: matplotlib not installed (the table above)")
    write_result(
        name,
        {
            "stream": {"width": args.width, "height": args.height, "fps": 25, "gop_s": 1,
                       "bitrate_kbps": args.bitrate},
            "window_seconds": seconds,
            "warmup_seconds": args.warmup,
            "segment_seconds": 4,
            "variants": args.variants,
            "baseline": "ffmpeg -c copy -f segment, one process per camera, same streams",
            "ffmpeg_transport": args.ffmpeg_transport,
            "results": [asdict(r) for r in results],
            **({"counts": [asdict(c) for c in counted], "parts": split} if args.counts else {}),
            **({"plot": None if png is None else png.name} if args.sweep else {}),
        },
        started=started, load=load, quick=args.quick, out=args.out,
        tools={"ffmpeg": first_line([FFMPEG, "-version"])},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
