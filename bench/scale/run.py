"""Benchmark: one spare standing in for one big recording server (issue 14, items 2 and 4).

    .venv/bin/python -m bench.scale --cameras 64                 # 5 gapless + 5 standard trials
    .venv/bin/python -m bench.scale --cameras 64 --mode gapless --trials 5
    .venv/bin/python -m bench.scale --quick                      # 4 cameras, 1 gapless trial
    .venv/bin/python -m bench.scale --curve standby --sizes 1,4,16,32,64

The site is bench/failover's (`BenchSite`: a real single-member etcd with client and peer TLS,
the camera simulator as its own process, `site apply`, `rec-1` and `spare-1` as real `hotspare
node` processes), with one server of N cameras and a spare allowed N standby sessions. The
trials are bench/failover's too (`run_trial`: SIGKILL rec-1, crash → claim, the spare covers,
rec-1 restarts, handback, re-insert done), and so is the frame count (`analyse`: every stored
frame's SEI tag in rec-1's store after the run against the simulator's frame log), read only
around the trials. What this bench adds is the size: the standing cost of N gapless standby
sessions on the spare before the crash (against the same spare with every camera standard), the
spare's CPU and memory while it records all N, the simulator's own CPU and the bitrate the spare
actually receives (so the stream the bench claims to run is the one that was served), each
standard camera-trial's missing video cut into its parts with the bounds they allow
(`bench.scale.parts`), and with `--curve standby` the spare's standby cost at each size on one site.

Modes: `gapless` (every camera gapless), `standard` (every camera standard), `both` (the gapless
trials, then every camera switched to standard on the same site and the standard trials).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    LoadSampler,
    busy_since,
    cpu_seconds,
    first_line,
    host_busy,
    median,
    node_cpu_seconds,
    node_rss_bytes,
    percentile,
    remove_work_dir,
    table,
    warn_if_short_of_disk,
    work_dir,
    write_result,
)
from bench.failover.run import (
    GOP_S,
    SERVER,
    SPARE,
    BenchSite,
    Row,
    Trial,
    analyse,
    build_rows,
    rows_table,
    run_trial,
    set_modes,
    spare_window,
    standby_sessions,
    standing_cost,
    wait_prebuffers,
)
from bench.plot import plot_panels
from bench.scale.parts import camera_parts, parts_rows, session_steps
from hotspare.coordination.etcd_process import find_etcd_binary
from hotspare.site.model import DEFAULT_CAMERA_MBPS
from tests.support.camsim import now_us
from tests.support.site import wait_for

MODES = ("gapless", "standard", "both")
TRIAL_SECONDS_ESTIMATE = 600
"""Seconds of recording a 64-camera trial keeps on disk, about (crash, cover, handback and the
re-insert): 5 gapless trials at 64 × 2 Mbit/s wrote ~45 GB on 2026-12-05."""


def camera_ids(count: int) -> list[str]:
    return [f"{SERVER}-c{i}" for i in range(1, count + 1)]


def build_site(args: argparse.Namespace, work: Path, cameras: int) -> BenchSite:
    """rec-1 with `cameras` cameras, all standard at first; the spare may hold a standby session
    for each of them (the default capacity, 16 sessions and 100 Mbit/s, would leave the rest of
    a 64-camera server standard: placement reports them as `fallback`)."""
    return BenchSite(
        work, cameras, width=args.width, height=args.height, fps=args.fps,
        bitrate_kbps=args.bitrate, reinsert_bytes_per_second=args.reinsert_rate,
        etcd_tls=args.etcd == "tls", segment_seconds=args.segment_seconds,
        spare_options={"standby_sessions": cameras,
                       "standby_mbps": max(100.0, DEFAULT_CAMERA_MBPS * cameras)},
    )  # fmt: skip


def sim_pid(site: BenchSite) -> int:
    assert site.sim is not None and site.sim.proc is not None
    return site.sim.proc.pid


def cover_probe(site: BenchSite, cameras: int) -> Callable[[float], dict[str, Any]]:
    """Measures the spare (and the simulator) while it records all of rec-1's cameras."""

    def probe(seconds: float) -> dict[str, Any]:
        spare = site.node(SPARE).process
        assert spare is not None
        sim = sim_pid(site)
        spare0, sim0, t0 = node_cpu_seconds(spare.pid), cpu_seconds(sim), time.monotonic()
        host0 = host_busy()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        spare_cpu = node_cpu_seconds(spare.pid) - spare0
        return {
            "window_s": round(elapsed, 2),
            "spare_cpu_cores": round(spare_cpu / elapsed, 3),
            "spare_cpu_s_per_camera_min": round(spare_cpu / cameras / (elapsed / 60), 4),
            "spare_rss_mb": round(node_rss_bytes(spare.pid) / 1e6, 1),
            "spare_peak_rss_mb": round(node_rss_bytes(spare.pid, peak=True) / 1e6, 1),
            "sim_cpu_cores": round((cpu_seconds(sim) - sim0) / elapsed, 3),
            "host_busy_fraction": busy_since(host0),
        }

    return probe


def to_standard(site: BenchSite) -> None:
    """Every camera standard; wait until the spare has closed its standby sessions."""
    set_modes(site, frozenset())
    wait_for("standby sessions closed", lambda: not standby_sessions(site), 60)


def stream_facts(args: argparse.Namespace, cost: dict[str, Any], sim_cores: float | None,
                 covers: list[dict[str, Any]]) -> dict[str, Any]:
    """The stream asked for, and what shows it was served: the bitrate each standby session
    received against the one configured, and the simulator's CPU (one process serving every
    session; it pushes a pre-encoded, looped clip, docs/camera-sim.md)."""
    received = cost.get("mbit_s_per_camera")
    return {
        "width": args.width, "height": args.height, "fps": args.fps, "gop_s": GOP_S,
        "bitrate_kbps": args.bitrate,
        "received_mbit_s_per_standby_session": received,
        "received_of_configured": (None if received is None
                                   else round(received * 1000 / args.bitrate, 3)),
        "sim_cpu_cores_standing": sim_cores,
        "sim_cpu_cores_cover_median": median([c["sim_cpu_cores"] for c in covers]),
        "encoding": "one pre-encoded clip looped by the simulator, a tag SEI per frame",
    }  # fmt: skip


def cover_rows(trials: list[Trial]) -> list[list[object]]:
    rows = []
    for key, unit in [("spare_cpu_cores", "cores"), ("spare_cpu_s_per_camera_min", "s/cam-min"),
                      ("spare_rss_mb", "MB"), ("sim_cpu_cores", "cores"),
                      ("host_busy_fraction", "of all cores")]:
        values = [float(t.cover[key]) for t in trials if key in t.cover]
        rows.append([f"cover {key}", unit, len(values), _round(median(values)),
                     _round(percentile(values, 0.95)), _round(max(values) if values else None)])
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summary_rows(phase: str, trials: list[Trial], fps: int,
                 gapless: frozenset[str]) -> list[Row]:
    """bench/failover's rows for one phase, without those the phase cannot fill (no standard
    camera in the gapless phase and the reverse)."""
    rows = build_rows(trials, fps, gapless)
    for row in rows:
        row.metric = f"{phase}: {row.metric}"
    return [r for r in rows if r.values]


# ------------------------------------------------------------------------------ crash trials


def run_crashes(args: argparse.Namespace) -> int:
    cameras = camera_ids(args.cameras)
    everyone = frozenset(cameras)
    phases = ["gapless", "standard"] if args.mode == "both" else [args.mode]
    started = dt.datetime.now(dt.UTC)
    sampler = LoadSampler().__enter__()
    print(f"hotspare scale bench: {args.cameras} cameras {args.width}x{args.height} {args.fps} "
          f"fps GOP {GOP_S:g} s {args.bitrate} kbit/s, {args.segment_seconds:g} s segments, "
          f"{args.trials} trial(s) per mode {phases}, etcd {args.etcd}; {sampler.line()}",
          flush=True)
    work = work_dir("scale")
    warn_if_short_of_disk(work, args.cameras * args.bitrate * 125 * TRIAL_SECONDS_ESTIMATE
                          * args.trials * len(phases),
                          f"every camera's video kept by the server, and by the spare until its "
                          f"re-insert, ~{TRIAL_SECONDS_ESTIMATE} s a trial")
    trials: dict[str, list[Trial]] = {p: [] for p in phases}
    steps: dict[int, tuple[int | None, dict[str, list[float | None]]]] = {}  # by trial index
    cost: dict[str, Any] = {}
    sim_cores: float | None = None
    error: str | None = None
    events = ""
    readback_s: float | None = None
    t_start = time.monotonic()
    try:
        with build_site(args, work, args.cameras) as site:
            site.start_all()
            wait_for(f"{SERVER} confirmed", lambda: site.alive(SERVER, confirmed=True), 120)
            time.sleep(args.settle_seconds)
            probe = cover_probe(site, args.cameras)
            for phase in phases:
                gapless = everyone if phase == "gapless" else frozenset()
                if phase == "gapless":
                    print(f"   standing cost of {len(gapless)} gapless standby sessions on the "
                          f"spare", flush=True)
                    sim0, t0, host0 = cpu_seconds(sim_pid(site)), time.monotonic(), host_busy()
                    cost = standing_cost(site, gapless, args.cameras, args.cost_seconds)
                    sim_cores = round((cpu_seconds(sim_pid(site)) - sim0)
                                      / (time.monotonic() - t0), 3)
                    cost["host_busy_fraction"] = busy_since(host0)
                elif standby_sessions(site):
                    to_standard(site)
                    time.sleep(args.settle_seconds)
                print(f"-- {phase}: {args.trials} trial(s)", flush=True)
                for i in range(1, args.trials + 1):
                    index = len([t for ts in trials.values() for t in ts]) + 1
                    try:
                        trial = run_trial(site, index, args.cover_seconds, args.settle_seconds,
                                          gapless, probe)
                        trials[phase].append(trial)
                        steps[trial.index] = session_steps(site.wait_event(
                            "recording", SERVER, timeout=30, after_us=trial.crash_us).data)
                    except AssertionError as exc:  # a wait timed out: report what we have
                        error = f"{phase} trial {i}: {exc}"
                        print(error, flush=True)
                        break
                if error:
                    break
            end_us = now_us()
            time.sleep(1.5)  # the sim flushes its frame log about once a second
            site.node(SERVER).stop()
            site.node(SPARE).stop()
            every_trial = [t for p in phases for t in trials[p]]
            if every_trial:
                print("   reading the trials' frames back from rec-1's store", flush=True)
                t_read = time.monotonic()
                analyse(site, every_trial, end_us, only_trial_windows=True)
                readback_s = round(time.monotonic() - t_read, 1)
                print(f"   read in {readback_s:.0f} s", flush=True)
            events = site.event_lines()
    finally:
        load = sampler.stop()
        remove_work_dir(work, args.keep)
    parts = {p: [camera_parts(t, *steps.get(t.index, (None, {})), args.fps,
                              everyone if p == "gapless" else frozenset()) for t in trials[p]]
             for p in phases}
    rows = [r for p in phases
            for r in [*summary_rows(p, trials[p], args.fps, everyone if p == "gapless"
                                    else frozenset()), *parts_rows(p, parts[p])]]
    every_trial = [t for p in phases for t in trials[p]]
    covers = [t.cover for t in every_trial if t.cover]
    stream = stream_facts(args, cost, sim_cores, covers)
    print()
    print(rows_table(rows))
    if any(parts.values()):
        print()
        print(_parts_table(phases, trials, parts))
    print()
    print(table(["while the spare records all cameras", "unit", "n", "median", "p95", "max"],
                cover_rows(every_trial), align="llrrrr"))
    print()
    if cost:
        print(_cost_lines(cost))
        print(f"  the host's cores were busy {cost['host_busy_fraction']:.0%} of that time "
              f"(every process of the site shares them)")
    print(f"stream: {stream['width']}x{stream['height']} {stream['fps']} fps "
          f"{stream['bitrate_kbps']} kbit/s configured; received per standby session "
          f"{stream['received_mbit_s_per_standby_session']} Mbit/s "
          f"({stream['received_of_configured']} of configured); simulator "
          f"{stream['sim_cpu_cores_standing']} cores standing, "
          f"{stream['sim_cpu_cores_cover_median']} while the spare covers")
    print(f"load: {load['loadavg_before']} -> {load['loadavg_after']}, 1-min peak "
          f"{load['load1_peak']}; wall time {time.monotonic() - t_start:.0f} s")
    verdict = _verdict(rows, phases)
    write_result(
        "scale",
        {
            "setup": {
                "cameras": args.cameras, "modes": phases, "trials_per_mode": args.trials,
                "segment_seconds": args.segment_seconds, "lease_ttl_s": 2.0,
                "probe_interval_s": 0.2, "probe_timeout_s": 0.5, "etcd_members": 1,
                "etcd_transport": args.etcd, "cover_seconds": args.cover_seconds,
                "settle_seconds": args.settle_seconds,
                "reinsert_bytes_per_second": args.reinsert_rate,
                "spare_standby_sessions": args.cameras,
                "frames_counted": "rec-1's store after the run, segments overlapping a trial "
                                  "(3 s before its crash to 3 s after its re-insert) only",
            },
            "stream": stream,
            "standing_cost_gapless": cost,
            "verdict": verdict,
            "error": error,
            "summary": [r.stats() for r in rows],
            "cover": [{"metric": m, "unit": u, "n": n, "median": med, "p95": p95, "max": mx}
                      for m, u, n, med, p95, mx in cover_rows(every_trial)],
            "trials": {p: [dict(asdict(t), crash_to_claim_s=t.crash_to_claim_s,
                                crash_to_recording_s=t.crash_to_recording_s,
                                restart_to_done_s=t.restart_to_done_s,
                                session_steps_s=steps.get(t.index, (None, {}))[1],
                                window_parts=camera)
                           for t, camera in zip(trials[p], parts[p], strict=True)]
                       for p in phases},
            "window_parts": "per standard camera and trial, bench/scale/parts.py: "
                            "missing = server_unwritten + crash_to_claim + "
                            "claim_to_session_start + session_open + keyframe_wait "
                            "+ unexplained",
            "outside_trials": "not counted (only the trials' windows are read back)",
            "wall_time_s": round(time.monotonic() - t_start),
            "frame_readback_s": readback_s,
        },
        started=started, load=load, quick=args.quick, out=args.out,
        tools={"etcd": first_line([str(find_etcd_binary()), "--version"])},
    )  # fmt: skip
    print(f"verdict: {verdict}")
    if error:
        print(f"events:\n{events[-6000:]}")
    return 0 if not error and all(verdict.values()) else 1


def _cost_lines(cost: dict[str, Any]) -> str:
    n = cost["gapless_cameras"]
    return (f"standing cost of {n} gapless standby sessions ({cost['window_s']:.0f} s windows; "
            f"baseline = the same spare, every camera standard):\n"
            f"  spare CPU {cost['spare_cpu_s_per_min_with_standby']:.2f} vs "
            f"{cost['spare_cpu_s_per_min_baseline']:.2f} s/min "
            f"({cost['spare_cpu_s_per_min_with_standby'] / 60:.2f} cores) -> "
            f"{cost['cpu_s_per_camera_min']:.4f} s per session-minute\n"
            f"  spare RSS {cost['spare_rss_mb_with_standby']:.1f} vs "
            f"{cost['spare_rss_mb_baseline']:.1f} MB -> {cost['rss_mb_per_camera']:.2f} MB per "
            f"session (pre-buffer median {cost['prebuffer_s_median']} s)\n"
            f"  the server records the same cameras for "
            f"{cost['server_recording_cpu_s_per_camera_min']:.4f} s per camera-minute")


def _parts_table(phases: list[str], trials: dict[str, list[Trial]],
                 parts: dict[str, list[dict[str, dict[str, Any]]]]) -> str:
    """Per trial, the medians of its standard cameras' window parts and both bounds' counts."""
    names = ("missing_s", "server_unwritten_s", "claim_to_session_start_s", "session_open_s",
             "keyframe_wait_s", "unexplained_s")
    lines: list[list[object]] = []
    for phase in phases:
        for trial, cameras in zip(trials[phase], parts[phase], strict=True):
            if not cameras:
                continue
            values = list(cameras.values())
            lines.append([
                trial.index, f"{trial.phase_wait_s:.2f}", f"{trial.crash_to_claim_s:.3f}",
                *[_median_of(values, name) for name in names],
                *[f"{sum(v[check] is True for v in values)}/{len(values)}"
                  for check in ("within_issue_bound", "within_open_bound",
                                "within_window_bound")]])
    return table(["trial", "phase", "claim", "missing", "unwritten", "to start", "open",
                  "keyframe wait", "unexplained", "<= claim+GOP", "<= claim+open+GOP+frame",
                  "<= unwritten+that"], lines, align="rrrrrrrrrrrr") + (
        "\n(medians over the trial's standard cameras, s; bench/scale/parts.py names the parts)")


def _median_of(values: list[dict[str, Any]], name: str) -> str:
    found = median([float(v[name]) for v in values if v[name] is not None])
    return "-" if found is None else f"{found:.3f}"


def _verdict(rows: list[Row], phases: list[str]) -> dict[str, bool]:
    """The issue's goals for this bench, each true only when measured and met in every trial."""
    by = {r.metric: r for r in rows}

    def met(metric: str) -> bool:
        row = by.get(metric)
        if row is None or not row.values:
            return False
        done, _, total = row.goal_met.partition("/")
        return done == total

    out: dict[str, bool] = {}
    if "gapless" in phases:
        out["gapless_missing_0"] = met("gapless: missing_takeover_frames_gapless")
    if "standard" in phases:
        out["standard_within_claim_plus_gop"] = met("standard: missing_takeover_s_standard")
        out["standard_within_claim_open_gop_frame"] = met(
            "standard: missing_takeover_s_standard_open_bound")
        out["standard_within_unwritten_claim_open_gop_frame"] = met(
            "standard: missing_takeover_s_standard_window_bound")
    for phase in phases:
        out[f"{phase}_claim_within_1s"] = met(f"{phase}: crash_to_claim_s")
        out[f"{phase}_no_frame_twice"] = met(f"{phase}: frames_twice")
    return out


# ------------------------------------------------------------------------------ standby curve


def run_standby_curve(args: argparse.Namespace) -> int:
    """One site with max(sizes) cameras: the spare's CPU and RSS with every camera standard
    (size 0), then with the first k cameras gapless for each size k in increasing order (memory
    a process touched is rarely given back, so sizes only grow)."""
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    cameras = max(sizes)
    ids = camera_ids(cameras)
    started = dt.datetime.now(dt.UTC)
    sampler = LoadSampler().__enter__()
    print(f"hotspare standby curve: sizes {sizes}, {cameras} cameras {args.width}x{args.height} "
          f"{args.fps} fps {args.bitrate} kbit/s, {args.cost_seconds:g} s windows; "
          f"{sampler.line()}", flush=True)
    work = work_dir("scale-standby")
    points: list[dict[str, Any]] = []
    error: str | None = None
    try:
        with build_site(args, work, cameras) as site:
            site.start_all()
            wait_for(f"{SERVER} confirmed", lambda: site.alive(SERVER, confirmed=True), 120)
            time.sleep(args.settle_seconds)
            for size in [0, *sizes]:
                gapless = frozenset(ids[:size])
                try:
                    if size:
                        set_modes(site, gapless)
                        wait_prebuffers(site, gapless, 8.0, f"{size} pre-buffers full", 120)
                except AssertionError as exc:
                    error = f"size {size}: {exc}"
                    print(error, flush=True)
                    break
                sim0, t0, host0 = cpu_seconds(sim_pid(site)), time.monotonic(), host_busy()
                spare_cpu, spare_rss, server_cpu = spare_window(site, args.cost_seconds)
                sim_cores = (cpu_seconds(sim_pid(site)) - sim0) / (time.monotonic() - t0)
                sessions = standby_sessions(site)
                kbps = median([float(sessions[c].get("kbps") or 0)
                               for c in gapless if c in sessions])
                points.append({
                    "sessions": size, "spare_cpu_cores": round(spare_cpu / 60, 3),
                    "spare_rss_mb": round(spare_rss, 1),
                    "server_cpu_cores": round(server_cpu / 60, 3),
                    "sim_cpu_cores": round(sim_cores, 3),
                    "host_busy_fraction": busy_since(host0),
                    "received_mbit_s_per_session": (None if kbps is None
                                                    else round(kbps / 1000, 3)),
                })  # fmt: skip
                print(f"   {size:3d} sessions: spare {spare_cpu / 60:.3f} cores, "
                      f"{spare_rss:.1f} MB", flush=True)
    finally:
        load = sampler.stop()
        remove_work_dir(work, args.keep)
    base = points[0] if points else None
    for p in points:
        if base is not None and p["sessions"]:
            p["cpu_s_per_session_min"] = round(
                (p["spare_cpu_cores"] - base["spare_cpu_cores"]) * 60 / p["sessions"], 4)
            p["rss_mb_per_session"] = round(
                (p["spare_rss_mb"] - base["spare_rss_mb"]) / p["sessions"], 2)
    print()
    print(table(["sessions", "spare cores", "s/session-min", "spare RSS MB", "MB/session",
                 "server cores", "sim cores", "host busy", "Mbit/s received"],
                [[p["sessions"], p["spare_cpu_cores"], p.get("cpu_s_per_session_min"),
                  p["spare_rss_mb"], p.get("rss_mb_per_session"), p["server_cpu_cores"],
                  p["sim_cpu_cores"], p["host_busy_fraction"], p["received_mbit_s_per_session"]]
                 for p in points]))
    print(f"\n{sampler.line()}")
    day = f"{started:%Y-%m-%d}"
    png_path = (args.out.with_suffix(".png") if args.out
                else RESULTS_DIR / f"scale-standby-curve-{day}{'-quick' if args.quick else ''}.png")
    curve = [p for p in points if p["sessions"]]
    png = plot_panels(png_path, [p["sessions"] for p in curve], "standby sessions on the spare", [
        ("spare CPU (cores)", {"spare": [p["spare_cpu_cores"] for p in curve],
                               "every camera standard": [base["spare_cpu_cores"] if base
                                                         else None for _ in curve]}),
        ("CPU per session-minute (s)", {"spare": [p.get("cpu_s_per_session_min")
                                                  for p in curve]}),
        ("spare RSS (MB)", {"spare": [p["spare_rss_mb"] for p in curve]}),
        ("MB per session", {"spare": [p.get("rss_mb_per_session") for p in curve]}),
    ], log_x=True) if curve else None  # fmt: skip
    print(f"plot: {png}" if png else "plot: none (matplotlib not installed, or nothing measured)")
    write_result(
        "scale-standby-curve",
        {"setup": {"sizes": sizes, "cameras": cameras, "window_s": args.cost_seconds,
                   "segment_seconds": args.segment_seconds, "etcd_transport": args.etcd,
                   "baseline": "size 0: the same spare with every camera standard"},
         "stream": {"width": args.width, "height": args.height, "fps": args.fps,
                    "gop_s": GOP_S, "bitrate_kbps": args.bitrate},
         "points": points, "error": error, "plot": None if png is None else png.name},
        started=started, load=load, quick=args.quick, out=args.out,
        tools={"etcd": first_line([str(find_etcd_binary()), "--version"])},
    )  # fmt: skip
    return 1 if error or not points else 0


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=None, help="rec-1's cameras (default 64)")
    p.add_argument("--trials", type=int, default=None, help="crash trials per mode (default 5)")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="gapless, standard, or both one after the other (default both)")
    p.add_argument("--quick", action="store_true",
                   help="4 cameras 320x240 10 fps 300 kbit/s, 1 gapless trial, short windows "
                   "(the CI version, < 60 s)")
    p.add_argument("--curve", choices=["standby"], default=None,
                   help="standby: the spare's standing cost at each of --sizes, no crash")
    p.add_argument("--sizes", default="1,4,16,32,64", help="standby sessions per curve point")
    p.add_argument("--width", type=int, default=None, help="default 1920")
    p.add_argument("--height", type=int, default=None, help="default 1080")
    p.add_argument("--fps", type=int, default=None, help="default 25")
    p.add_argument("--bitrate", type=int, default=None, help="kbit/s per camera (default 4000)")
    p.add_argument("--segment-seconds", type=float, default=1.0)
    p.add_argument("--cost-seconds", type=float, default=None,
                   help="measuring window of the standing cost (default 20, quick 5)")
    p.add_argument("--cover-seconds", type=float, default=None,
                   help="how long the spare records before rec-1 restarts (default 8, quick 3)")
    p.add_argument("--settle-seconds", type=float, default=None,
                   help="normal recording between trials (default 4, quick 2)")
    p.add_argument("--reinsert-rate", type=int, default=50_000_000,
                   help="spare's re-insert limit, bytes/s (docs' example value)")
    p.add_argument("--etcd", choices=["tls", "plaintext"], default="tls")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the site's files (path printed)")
    args = p.parse_args(argv)
    quick = args.quick
    defaults: dict[str, Any] = {
        "cameras": 4 if quick else 64, "trials": 1 if quick else 5,
        "mode": "gapless" if quick else "both", "width": 320 if quick else 1920,
        "height": 240 if quick else 1080, "fps": 10 if quick else 25,
        "bitrate": 300 if quick else 4000, "cost_seconds": 5.0 if quick else 20.0,
        "cover_seconds": 3.0 if quick else 8.0, "settle_seconds": 2.0 if quick else 4.0,
    }  # fmt: skip
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.cameras < 1 or args.trials < 1:
        p.error("--cameras and --trials must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.curve == "standby":
        return run_standby_curve(args)
    return run_crashes(args)


if __name__ == "__main__":
    sys.exit(main())
