"""Benchmark: re-insert throughput (spare buffer → original's store) against a raw HTTP copy.

    .venv/bin/python -m bench.reinsert              # 2 GB limit off + 0.5 GB at the default
    .venv/bin/python -m bench.reinsert --quick      # 0.5 GB + 0.25 GB
    .venv/bin/python -m bench.reinsert --gigabytes 4 --no-limited

What runs, all on loopback:

- a single-member etcd (the product's launcher): re-insert writes its progress there (at most
  every 0.5 s);
- segments: a base run of 10 two-second fragmented-MP4 segments (640x360 H.264, 25 fps, GOP 1 s,
  ~4.4 Mbit/s of encoded noise so the bytes do not compress away) is encoded once; the buffer
  store of `spare-1` then gets as many *runs* as needed to reach the size, each run a copy of the
  base files under its own run id and wall anchor, spread over 8 cameras, back to back in time,
  recorded_as `rec-1`, committed through `SegmentStore.commit_segment` (parse, fsync, SHA-256,
  row) like the recorder does — so each one is a valid, distinct import for the original;
- the original `rec-1`: a real `hotspare node` process in standalone mode with those 8 cameras
  configured (their URLs lead nowhere, so it records nothing during the run). Before it starts,
  one segment of its own per camera, later than every buffered one, is committed into its store:
  the state after a real handback, where the original has recorded past the outage (re-insert
  waits for that, docs/failover.md); with `--record N` it also records N simulated cameras
  (`--record-stream`, default 1280x720 15 fps 2 Mbit/s) throughout, so re-insert competes with
  recording for the store's writer, the disk and the process, as after a real handback;
- contender: `hotspare.failover.reinsert.Reinserter` driven the way the spare's loop drives it
  (`start()`, `step()` until the buffer is empty, `finish()`), with the rate limit at 1 TB/s
  (off) and, on a second, smaller buffer, at the product's default (50 MB/s);
- baseline, same run, same files: a raw streaming HTTP PUT per file with httpx (one keep-alive
  connection, 1 MiB chunks like NodeClient) to a minimal stdlib HTTP server in its own process
  that writes the body to a file and fsyncs file and directory — the least any HTTP transfer of
  these bytes into durable files costs on this machine.

Afterwards the original is stopped and its store checked: every buffered segment present exactly
once (row count per run/seq, recorded_by spare-1), each row's SHA-256 the buffered one, and each
file on disk hashing to it. All data is deleted at the end (`--keep` keeps it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fractions
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import tomli_w
from av.video.frame import VideoFrame

from bench.common import (
    LoadSampler,
    first_line,
    remove_work_dir,
    table,
    work_dir,
    write_result,
)
from hotspare.camerasim.launcher import CameraSim
from hotspare.client.node_client import NodeClient
from hotspare.config.models import SiteMembership
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.etcd_process import EtcdCluster, find_etcd_binary
from hotspare.failover.reinsert import (
    NotYet,
    RateLimiter,
    Reinserter,
    buffered_segments,
)
from hotspare.node.process import NodeProcess
from hotspare.pki.store import SitePki
from hotspare.sitestate import layout
from hotspare.sitestate.access import EtcdSite
from hotspare.store import mp4
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import MOVFLAGS

SERVER = "rec-1"
SPARE = "spare-1"
TOKEN = "bench-reinsert-token-0123456789"
CAMERAS = [f"{SERVER}-c{i}" for i in range(1, 9)]
FPS = 25
GOP = 25
SEG_FRAMES = 50  # 2 s segments
BASE_SEGMENTS = 10
WIDTH, HEIGHT = 640, 360
TB = fractions.Fraction(1, 90_000)
FRAME_90K = 90_000 // FPS
SEG_90K = SEG_FRAMES * FRAME_90K
SEG_US = SEG_90K * 1_000_000 // 90_000
MB = 1_000_000
CHUNK = 1 << 20
DEFAULT_LIMIT = int(SiteMembership.model_fields["reinsert_bytes_per_second"].default)
OFF = 10**12
# An SEI "user data unregistered" NAL put before each keyframe's slice: its 8 digits are rewritten
# per copy, so every copy hashes differently (the importer answers `duplicate` for a hash it
# already holds) while box sizes, frame count and times stay those of the parsed base file.
SEI_UUID = b"hotspare-bench!!"
SEI_MARK = b"HS00000000"
SEI_NAL = (
    b"\x00\x00\x00\x01\x06\x05"
    + bytes([len(SEI_UUID) + len(SEI_MARK)])
    + SEI_UUID
    + SEI_MARK
    + b"\x80"
)


def _with_sei(payload: bytes) -> bytes:
    """Insert SEI_NAL before the IDR slice of an Annex-B keyframe (libx264 without global
    header writes SPS/PPS in band; the mp4 muxer converts to length prefixes)."""
    at = payload.find(b"\x00\x00\x01\x65")
    if at < 0:
        raise RuntimeError("keyframe without an IDR slice start code")
    if at > 0 and payload[at - 1] == 0:
        at -= 1
    return payload[:at] + SEI_NAL + payload[at:]


def copy_distinct(src: bytes, dest: Path, copy_no: int) -> None:
    """Write `src` with the SEI digits set to copy_no (same length: the boxes stay valid)."""
    dest.write_bytes(src.replace(SEI_MARK, b"HS%08d" % copy_no))


# ------------------------------------------------------------------------------ making segments


def encode_base(directory: Path) -> list[Path]:
    """BASE_SEGMENTS consecutive segments of one run (media time continues across files), noise
    content so H.264 cannot shrink it: the sizes are those of a 4 Mbit/s camera."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = TB
    enc.framerate = fractions.Fraction(FPS, 1)
    enc.gop_size = GOP
    enc.bit_rate = 4_000_000
    enc.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "bf": "0",
        "keyint_min": str(GOP),
        "sc_threshold": "0",
        "forced-idr": "1",
        "maxrate": "4M",
        "bufsize": "4M",
    }
    packets: list[tuple[bytes, int, bool]] = []
    total = BASE_SEGMENTS * SEG_FRAMES
    for i in range(total):
        frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane in frame.planes:
            plane.update(os.urandom(plane.buffer_size))
        frame.pts = i * FRAME_90K
        frame.time_base = TB
        packets += [(bytes(p), int(p.pts or 0), bool(p.is_keyframe)) for p in enc.encode(frame)]
    packets += [(bytes(p), int(p.pts or 0), bool(p.is_keyframe)) for p in enc.encode(None)]
    packets = [(_with_sei(data) if key else data, pts, key) for data, pts, key in packets]
    extradata = bytes(enc.extradata or b"")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for j in range(BASE_SEGMENTS):
        path = directory / f"base{j:02d}.mp4"
        with av.open(str(path), "w", format="mp4", options={"movflags": MOVFLAGS}) as out:
            stream = out.add_stream("h264", rate=FPS)
            stream.width, stream.height = WIDTH, HEIGHT
            stream.time_base = TB
            stream.codec_context.extradata = extradata
            for payload, pts, key in packets[j * SEG_FRAMES : (j + 1) * SEG_FRAMES]:
                pkt = av.Packet(payload)
                pkt.pts = pkt.dts = pts
                pkt.time_base = TB
                pkt.is_keyframe = key
                pkt.stream = stream
                out.mux(pkt)
        paths.append(path)
    return paths


@dataclass
class Buffer:
    """What was put into the spare's buffer: (run_id, seq) → sha256, and the total bytes."""

    segments: dict[tuple[str, int], str]
    bytes: int
    first_wall_us: int
    last_end_wall_us: int
    build_s: float
    runs: int


def fill_buffer(
    store: SegmentStore, base: list[Path], target_bytes: int, start_wall_us: int, first_copy: int
) -> Buffer:
    """Copy the base run into `store` as many distinct runs as needed to reach target_bytes.

    Per camera the runs follow each other in wall time (no overlap, so the original imports every
    one whole); cameras run in parallel in time, like a real site."""
    t0 = time.monotonic()
    infos = [mp4.parse_path(p) for p in base]
    raw = [p.read_bytes() for p in base]
    for data in raw:
        if SEI_MARK not in data:
            raise RuntimeError("base segment lacks the SEI marker")
    run_bytes = sum(p.stat().st_size for p in base)
    runs = max(1, -(-target_bytes // run_bytes))
    run_span_us = BASE_SEGMENTS * SEG_US + 1_000_000  # a second between runs: a reconnect
    segments: dict[tuple[str, int], str] = {}
    total = 0
    last_end = start_wall_us
    for r in range(runs):
        camera = CAMERAS[r % len(CAMERAS)]
        anchor = start_wall_us + (r // len(CAMERAS)) * run_span_us
        run = store.begin_run(camera, SERVER, anchor, WallSource.CAMERA)
        for seq, (data, info) in enumerate(zip(raw, infos, strict=True)):
            copy_distinct(data, store.segment_path(camera, run.run_id, seq), first_copy + r)
            seg = store.commit_segment(
                run.run_id,
                seq,
                info.start_media_90k,
                info.duration_90k,
                info.frame_count,
                info.init_bytes,
            )
            segments[(run.run_id, seq)] = seg.sha256
            total += seg.bytes
            last_end = max(last_end, seg.end_wall_us)
        store.end_run(run.run_id, anchor + BASE_SEGMENTS * SEG_US, "bench")
    return Buffer(segments, total, start_wall_us, last_end, time.monotonic() - t0, runs)


def seed_original(store_root: Path, base: list[Path], after_wall_us: int) -> None:
    """One segment of the original's own per camera, later than everything buffered: what a
    restarted original holds once it has confirmed recording (re-insert waits for it)."""
    info = mp4.parse_path(base[0])
    data = base[0].read_bytes()
    with SegmentStore.open(store_root, SERVER) as store:
        for i, camera in enumerate(CAMERAS):
            run = store.begin_run(camera, SERVER, after_wall_us, WallSource.CAMERA)
            copy_distinct(data, store.segment_path(camera, run.run_id, 0), 90_000_000 + i)
            store.commit_segment(
                run.run_id,
                0,
                info.start_media_90k,
                info.duration_90k,
                info.frame_count,
                info.init_bytes,
            )


# ------------------------------------------------------------------------------ the original


def start_original(work: Path, live: list[str] | None = None) -> NodeProcess:
    """`live`: RTSP URLs of cameras the original records meanwhile (`--record`): re-insert then
    competes with recording for the store's writer, the disk and the process's CPU, as after a
    real handback."""
    base = work / SERVER
    base.mkdir(parents=True, exist_ok=True)
    config = {
        "name": SERVER,
        "data_dir": str(base / "data"),
        "api": {"host": "127.0.0.1", "port": 0, "token": TOKEN},
        "recording": {
            "segment_seconds": 2.0,
            "reconnect_initial_seconds": 1.0,
            "reconnect_max_seconds": 30.0,
            "open_timeout_seconds": 1.0,
        },
        "retention": {"max_age_days": 3650, "min_free_bytes": 0},
        # Port 9 (discard) on loopback refuses: the cameras are configured (imports for unknown
        # cameras are refused) but record nothing, so the run measures re-insert alone.
        "cameras": [{"id": c, "url": f"rtsp://127.0.0.1:9/{c}"} for c in CAMERAS]
        + [{"id": f"{SERVER}-live{i}", "url": url} for i, url in enumerate(live or (), 1)],
    }
    path = base / "node.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return NodeProcess(
        name=SERVER,
        config_path=path,
        data_dir=base / "data",
        token=TOKEN,
        log_path=base / "node.log",
    )


def start_live_cameras(work: Path, count: int, stream: str) -> CameraSim | None:
    """The simulator for `--record` (None when the original records nothing)."""
    if count <= 0:
        return None
    size, _, rest = stream.partition("@")
    fps, _, kbps = rest.partition(":")
    width, _, height = size.partition("x")
    sim = CameraSim(work / "camsim", cameras=count, width=int(width), height=int(height),
                    fps=int(fps), gop="1s", bitrate_kbps=int(kbps)).start()
    print(f"   the original records {count} cameras ({stream}) during the run", flush=True)
    return sim


# ------------------------------------------------------------------------------ contenders


@dataclass(frozen=True)
class Phase:
    name: str
    gigabytes: float
    limit: int


@dataclass
class Result:
    name: str
    limit_bytes_per_second: int | None
    segments: int
    bytes: int
    seconds: float
    mb_per_s: float
    duplicates: int = 0
    not_yet_waits: int = 0


def run_reinsert(
    coord: Coordinator, buffer_store: SegmentStore, target_url: str, limit: int, name: str
) -> Result:
    """Drive Reinserter exactly as the spare's loop does, minus the loop's other duties."""
    with NodeClient(target_url, TOKEN, timeout=60.0) as target:
        reinserter = Reinserter(
            EtcdSite(coord),
            buffer_store,
            SERVER,
            SPARE,
            "http://127.0.0.1:1",
            target,
            None,
            RateLimiter(limit),
        )
        total = reinserter.progress.total
        t0 = time.monotonic()
        reinserter.start()
        waits = 0
        sent_bytes = 0
        sent = 0
        done0, bytes0 = reinserter.progress.done, reinserter.progress.bytes
        while True:
            try:
                seg = reinserter.step()
            except NotYet:
                waits += 1
                time.sleep(0.05)
                continue
            if seg is None:
                break
            # A step sends a window of segments and returns only the newest: count what the
            # progress says was acknowledged in this run.
            reported = sent
            sent = reinserter.progress.done - done0
            sent_bytes = reinserter.progress.bytes - bytes0
            if sent // 200 > reported // 200:
                rate = sent_bytes / MB / (time.monotonic() - t0)
                print(f"   {name}: {sent}/{total} segments, {rate:.1f} MB/s", flush=True)
        reinserter.finish()
        elapsed = time.monotonic() - t0
    return Result(
        name,
        None if limit >= OFF else limit,
        sent,
        sent_bytes,
        round(elapsed, 2),
        round(sent_bytes / MB / elapsed, 1),
        reinserter.progress.duplicates,
        waits,
    )


SINK_SERVER = r'''
"""Minimal PUT sink: body → file, fsync file and directory, 200. The baseline's receiver."""
import http.server, os, sys
root = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_PUT(self):
        n = int(self.headers["Content-Length"])
        path = os.path.join(root, self.path.strip("/").replace("/", "_"))
        with open(path, "wb") as f:
            while n:
                chunk = self.rfile.read(min(n, 1 << 20))
                if not chunk: break
                f.write(chunk); n -= len(chunk)
            f.flush(); os.fsync(f.fileno())
        fd = os.open(root, os.O_RDONLY); os.fsync(fd); os.close(fd)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
'''


def _chunks(path: Path) -> Any:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def run_baseline(work: Path, files: list[Path]) -> Result:
    sink_dir = work / "sink"
    sink_dir.mkdir()
    script = work / "sink_server.py"
    script.write_text(SINK_SERVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(sink_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        total = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client:
            t0 = time.monotonic()
            for i, path in enumerate(files):
                size = path.stat().st_size
                r = client.put(
                    f"/f{i}",
                    content=_chunks(path),
                    headers={
                        "Content-Length": str(size),
                        "Content-Type": "application/octet-stream",
                    },
                )
                r.raise_for_status()
                total += size
            elapsed = time.monotonic() - t0
        got = sum(p.stat().st_size for p in sink_dir.iterdir())
        if got != total:
            raise RuntimeError(f"baseline sink holds {got} bytes, sent {total}")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(sink_dir, ignore_errors=True)  # keep the disk use bounded
    return Result(
        "raw HTTP PUT + fsync",
        None,
        len(files),
        total,
        round(elapsed, 2),
        round(total / MB / elapsed, 1),
    )


# ------------------------------------------------------------------------------ verification


def verify(store_root: Path, expected: dict[tuple[str, int], str]) -> dict[str, Any]:
    """Every buffered segment in the original exactly once, with the buffered hash, on disk."""
    with SegmentStore.open(store_root, SERVER) as store:
        rows = (
            store.index.read()
            .execute(
                "select run_id, seq, sha256, relpath, imported_from, head_skip_frames, "
                "tail_skip_frames from segment where recorded_by = ?",
                (SPARE,),
            )
            .fetchall()
        )
        own = (
            store.index.read()
            .execute("select count(*) from segment where recorded_by = ?", (SERVER,))
            .fetchone()[0]
        )
        seen: dict[tuple[str, int], int] = {}
        bad_hash = bad_file = trimmed = 0
        for run_id, seq, sha, relpath, _imported_from, head, tail in rows:
            seen[(run_id, seq)] = seen.get((run_id, seq), 0) + 1
            if expected.get((run_id, seq)) != sha:
                bad_hash += 1
            h = hashlib.sha256()
            with (store.root / relpath).open("rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            if h.hexdigest() != sha:
                bad_file += 1
            if head or tail:
                trimmed += 1
    missing = [k for k in expected if k not in seen]
    twice = [k for k, n in seen.items() if n > 1]
    unexpected = [k for k in seen if k not in expected]
    return {
        "expected": len(expected),
        "rows": len(rows),
        "missing": len(missing),
        "twice": len(twice),
        "unexpected": len(unexpected),
        "row_hash_mismatch": bad_hash,
        "file_hash_mismatch": bad_file,
        "trimmed": trimmed,
        "own_rows": own,
        "ok": not (missing or twice or unexpected or bad_hash or bad_file or trimmed),
    }


# ------------------------------------------------------------------------------ main


def results_table(results: list[Result], baseline: Result) -> str:
    """The raw copy first (the baseline), then each re-insert phase with its ratio to it; the
    goal (>= 0.7x the raw copy) applies to the unlimited run only."""
    rows = []
    for r in [baseline, *results]:
        limit = "off" if r.limit_bytes_per_second is None else f"{r.limit_bytes_per_second / MB:g}"
        if r is baseline:
            limit, ratio, goal = "-", "1.00x", "(base)"
        else:
            ratio = f"{r.mb_per_s / baseline.mb_per_s:.2f}x"
            goal = (
                "-"
                if r.limit_bytes_per_second is not None
                else ("met" if r.mb_per_s >= 0.7 * baseline.mb_per_s else "MISSED")
            )
        rows.append([r.name, limit, r.segments, f"{r.bytes / MB:.0f}", f"{r.seconds:.1f}",
                     f"{r.mb_per_s:.1f}", ratio, goal])
    return table(["contender", "limit MB/s", "segments", "MB", "s", "MB/s", "vs raw", "goal"],
                 rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.reinsert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--gigabytes",
        type=float,
        default=None,
        help="buffer size for the unlimited run (default 2, quick 0.5)",
    )
    p.add_argument(
        "--limited-gigabytes",
        type=float,
        default=None,
        help="buffer size for the run at the default 50 MB/s limit (default 0.5, quick 0.25)",
    )
    p.add_argument("--no-limited", action="store_true", help="skip the run at the default limit")
    p.add_argument("--quick", action="store_true", help="0.5 GB limit off, 0.25 GB limited")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--record", type=int, default=0, metavar="N",
                   help="the original records N simulated cameras meanwhile (default 0: idle)")
    p.add_argument("--record-stream", default="1280x720@15:2000", metavar="WxH@FPS:KBPS",
                   help="what those cameras send (default 1280x720@15:2000, the 64-camera run's)")
    args = p.parse_args(argv)
    gigabytes = args.gigabytes or (0.5 if args.quick else 2.0)
    limited_gb = args.limited_gigabytes or (0.25 if args.quick else 0.5)

    started = dt.datetime.now(dt.UTC)
    sampler = LoadSampler().__enter__()
    plan = [f"{gigabytes:g} GB limit off"]
    if not args.no_limited:
        plan.append(f"{limited_gb:g} GB at {DEFAULT_LIMIT / MB:g} MB/s")
    plan.append("against a raw HTTP PUT + fsync of the same files")
    print(f"hotspare re-insert bench: {', '.join(plan)}; {sampler.line()}", flush=True)
    work = work_dir("reinsert")
    etcd = EtcdCluster(work / "etcd", 1, pki=SitePki.init(work / "pki", "bench CA"))
    sim = start_live_cameras(work, args.record, args.record_stream)
    node = start_original(work, [] if sim is None else [sim.rtsp_url(c) for c in sim.camera_ids])
    results: list[Result] = []
    baseline: Result | None = None
    list_ms = 0.0
    seg_mb = 0.0
    checks: dict[str, Any] = {}
    builds: dict[str, float] = {}
    t_start = time.monotonic()
    try:
        etcd.start()
        coord = Coordinator(etcd.endpoints, layout.site_prefix("bench"), timeout=2.0, deadline=10.0,
                            tls=etcd.client_tls)
        base = encode_base(work / "base")
        seg_mb = sum(p.stat().st_size for p in base) / len(base) / MB
        print(
            f"   base run: {len(base)} segments of {SEG_FRAMES / FPS:g} s, {seg_mb:.2f} MB each",
            flush=True,
        )
        (work / SPARE / "buffer").mkdir(parents=True)
        buffer_store = SegmentStore.open(work / SPARE / "buffer" / SERVER, SPARE)
        now = time.time_ns() // 1000
        # Buffered video lies in the past (older than the whole set needs), the original's own
        # segment after it.
        wall = now - 6 * 3600 * 1_000_000
        phases: list[Phase] = [Phase("re-insert, limit off", gigabytes, OFF)]
        if not args.no_limited:
            phases.append(Phase("re-insert, default limit", limited_gb, DEFAULT_LIMIT))
        expected_all: dict[tuple[str, int], str] = {}
        copies = 1  # copy 0 is the original's own seeded segment (the base bytes as encoded)
        seed_original(node.data_dir / "store", base, now - 60_000_000)
        node.start(timeout=60.0)
        for phase in phases:
            # Each phase gets its own buffer, built only now: disk use stays ~2 sets at most.
            buf = fill_buffer(buffer_store, base, int(phase.gigabytes * 1e9), wall, copies)
            copies += buf.runs
            wall = buf.last_end_wall_us + 10_000_000
            builds[phase.name.strip()] = round(buf.build_s, 1)
            expected_all.update(buf.segments)
            print(
                f"   buffer for '{phase.name.strip()}': {len(buf.segments)} segments, "
                f"{buf.bytes / MB:.0f} MB committed in {buf.build_s:.1f} s",
                flush=True,
            )
            if baseline is None:
                # Baseline: the same files the first re-insert sends, in the same order.
                files = [
                    buffer_store.segment_file(s)
                    for s in buffered_segments(buffer_store, SERVER, limit=10**9)
                ]
                print(f"   baseline: raw PUT of {len(files)} files", flush=True)
                baseline = run_baseline(work, files)
                print(f"   baseline {baseline.mb_per_s:.1f} MB/s", flush=True)
                t_list = time.monotonic()
                buffered_segments(buffer_store, SERVER, limit=1)
                list_ms = (time.monotonic() - t_list) * 1000
                print(
                    f"   one buffered_segments() call over {len(files)} rows: {list_ms:.0f} ms "
                    "(re-insert calls it once per step of up to 16 segments)",
                    flush=True,
                )
            assert node.url is not None
            result = run_reinsert(coord, buffer_store, node.url, phase.limit, phase.name)
            results.append(result)
            print(
                f"   {phase.name.strip()}: {result.mb_per_s:.1f} MB/s ({result.segments} "
                f"segments in {result.seconds:.1f} s)",
                flush=True,
            )
        left = len(buffered_segments(buffer_store, SERVER, limit=10**9))
        buffer_store.close()
        node.stop(timeout=60)
        print("   verifying the original's store (rows, hashes, files)", flush=True)
        checks = verify(node.data_dir / "store", expected_all)
        checks["left_in_buffer"] = left
        checks["ok"] = checks["ok"] and left == 0
        coord.close()
    finally:
        node.kill()
        if sim is not None:
            sim.stop()
        etcd.stop()
        load = sampler.stop()
        remove_work_dir(work, args.keep)
    print()
    if baseline is None:
        print("no baseline measured; see the errors above")
        return 1
    print(results_table(results, baseline))
    print(f"\nstore check: {checks}")
    print(
        f"load average before {load['loadavg_before']}, after {load['loadavg_after']}, 1-min "
        f"peak {load['load1_peak']} on {os.cpu_count()} cores; wall time "
        f"{time.monotonic() - t_start:.0f} s; segments {SEG_FRAMES / FPS:g} s of "
        f"{WIDTH}x{HEIGHT} at ~4.4 Mbit/s, {seg_mb:.2f} MB each"
    )
    unlimited = next((r for r in results if r.limit_bytes_per_second is None), None)
    write_result(
        "reinsert",
        {
            "setup": {
                "segment_seconds": SEG_FRAMES / FPS,
                "segment_mb": round(seg_mb, 3),
                "width": WIDTH,
                "height": HEIGHT,
                "fps": FPS,
                "gop_frames": GOP,
                "cameras": len(CAMERAS),
                "base_segments_per_run": BASE_SEGMENTS,
                "unlimited_gigabytes": gigabytes,
                "limited_gigabytes": None if args.no_limited else limited_gb,
                "buffer_build_seconds": builds,
                "etcd_members": 1,
                "original": "hotspare node, standalone, loopback",
                "original_records_cameras": args.record,
                "record_stream": args.record_stream if args.record else None,
                "buffered_segments_call_ms": round(list_ms, 1),
            },
            "baseline": asdict(baseline),
            "phases": [asdict(ph) for ph in phases],
            "results": [asdict(r) for r in results],
            "ratio_unlimited_vs_raw": (
                None if unlimited is None else round(unlimited.mb_per_s / baseline.mb_per_s, 3)
            ),
            "goal": ">= 0.7x raw",
            "store_check": checks,
        },
        started=started, load=load, quick=args.quick, out=args.out,
        tools={"etcd": first_line([str(find_etcd_binary()), "--version"])},
    )  # fmt: skip
    return 0 if checks.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
