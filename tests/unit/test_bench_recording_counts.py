"""bench/recording's counts: perf stat parsing, per-camera-minute scaling, the parts split, and
the callgrind bucketing (the live runs are benchmarks, not tests)."""

from __future__ import annotations

from bench.recording.counts import (
    Counts,
    parse_perf_stat,
    parts,
    thread_kind,
    threads_split,
    to_counts,
)
from bench.recording.instr import _ANNOTATE_LINE, bucket_of

PERF_STAT = """# started on Fri Dec  4 21:00:00 2026

12000.50,msec,task-clock,12000500000,100.00,0.400,CPUs utilized
480000,,raw_syscalls:sys_enter,12000500000,100.00,40.000,K/sec
<not supported>,,instructions,0,100.00,,
1200,,context-switches,12000500000,100.00,0.1,K/sec
300,,page-faults,12000500000,100.00,0.025,K/sec
160000,,syscalls:sys_enter_poll,12000500000,100.00,,
0,,syscalls:sys_enter_fsync,12000500000,100.00,,
"""


def test_perf_stat_lines_become_counts_and_unsupported_events_are_left_out() -> None:
    raw = parse_perf_stat(PERF_STAT)
    assert "instructions" not in raw
    assert raw["task-clock"] == 12000.5
    # 8 cameras over 30 s: per camera-minute = value / 8 / 0.5
    c = to_counts(8, "ffmpeg", raw, 30.0)
    assert c.cpu_s == 3.0001
    assert c.syscalls == 120_000
    assert c.context_switches == 300
    assert c.page_faults == 75
    assert c.by_syscall == {"poll": 40_000}  # zero counts are not listed


def _c(tool: str, cpu: float, sysc: int) -> Counts:
    return Counts(8, tool, cpu, sysc, 0, 0)


def test_parts_are_the_steps_between_variants_of_one_run() -> None:
    rows = parts([_c("hs:pyav-demux", 0.40, 100), _c("hs:pyav-remux", 0.50, 130),
                  _c("hs:no-index", 0.52, 131), _c("hotspare", 0.60, 140),
                  _c("ffmpeg", 0.40, 110)])
    got = {r["part"]: (r["cpu_s"], r["syscalls"], r["x_ffmpeg_cpu"]) for r in rows}
    assert got["PyAV demux (pyav-demux)"] == (0.4, 100, 1.0)
    assert got["+ fMP4 writer (pyav-remux − pyav-demux)"] == (0.1, 30, 0.25)
    assert got["+ our per-packet Python (no-index − pyav-remux)"] == (0.02, 1, 0.05)
    assert got["+ commit (default − no-index)"] == (0.08, 9, 0.2)
    assert got["= the recorder (default)"] == (0.6, 140, 1.5)
    # without every variant in the run there is no split
    assert parts([_c("hotspare", 0.6, 140), _c("ffmpeg", 0.4, 110)]) == []


def test_threads_are_split_by_their_names() -> None:
    assert thread_kind("hotspare-commit-cam-1") == "commit"
    assert thread_kind("hotspare-rec-cam-1") == "demux+mux"
    assert thread_kind("Thread-3 (run_floor)") == "demux+mux"
    assert thread_kind("MainThread") == "other"
    names = {1: "MainThread", 2: "hotspare-rec-cam-1", 3: "hotspare-commit-cam-1"}
    split = threads_split({1: 1.0, 2: 5.0, 3: 1.0}, {1: 1.0, 2: 8.0, 3: 1.5, 4: 0.25}, names,
                          cameras=1, window_s=60.0)
    assert split == {"commit": 0.5, "demux+mux": 3.0, "other": 0.25}  # tid 4 unnamed: other


def test_callgrind_functions_land_in_their_buckets() -> None:
    line = ("  137,056,211 (11.00%)  ???:mov_write_moof_tag [/x/av.libs/libavformat-1.so.62]")
    m = _ANNOTATE_LINE.match(line)
    assert m is not None and m.group(1) == "137,056,211" and m.group(3) == "mov_write_moof_tag"
    assert bucket_of(m.group(4), m.group(3)) == "FFmpeg mov muxer"
    assert bucket_of("/usr/lib/libavformat.so.59", "ff_rtsp_tcp_read_packet") == \
        "FFmpeg RTSP/RTP/TCP read"
    assert bucket_of("/usr/lib/libavcodec.so.59", "h264_parse") == "FFmpeg H.264 parser"
    assert bucket_of("/x/libpython3.11.so.1.0", "_PyEval_EvalFrameDefault") == \
        "Python interpreter"
    assert bucket_of("/x/site-packages/av/packet.cpython-311-x86_64-linux-gnu.so",
                     "__pyx_f_2av_6packet") == "PyAV (Cython)"
    assert bucket_of("/usr/lib/libcrypto.so.3", "sha256_block_data_order") == \
        "SHA-256 (libcrypto)"
    assert bucket_of("/x/unknown.so", "f") == "other"
