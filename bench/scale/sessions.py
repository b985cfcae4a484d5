"""How long N camera sessions opened at once take, step by step (issue 14 item 2, standard).

    .venv/bin/python -m bench.scale.sessions --cameras 64 --width 1280 --height 720 --fps 15 \\
        --bitrate 2000

A standard camera's takeover loses the video up to the spare's first keyframe, and that can come
only after the session plays. This opens N sessions at the same instant (one thread each, as the
spare's takeover does) against the camera simulator, each camera's stream already playing to one
other client (as after a crash: the bench's holders), and times per session, from that instant:

- `raw`: a minimal RTSP client over TCP: OPTIONS, DESCRIBE, SETUP (video), PLAY answered, first
  RTP packet, first keyframe (an IDR NAL unit, single or fragmented);
- `pyav`: the recorder's own open (`CameraSource.open`, same FFmpeg options), then its first
  packet and first keyframe packet from `demux`;
- with `--old-probe`, also `pyav-old-probe`: the same open with FFmpeg's stream probe as it was
  before `max_ts_probe=1` (it read on to its 32 KB cap), to compare the two in the same run.

Per round also the client process's CPU (`client_cpu_s`: the opens and reads of all N sessions)
and `late_gop`: sessions whose first keyframe came more than half a GOP after the round's median
session's (where the cameras' GOPs start together, as at 64 in the runs so far, such a session
stored a later keyframe than most).

The two rounds run one after the other with a pause between them. What the simulator's process
spent meanwhile is in the result, so its share (64 new sessions in one GStreamer process) can be
told from the client's. Writes `bench/results/scale-sessions-<date>.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import re
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av

from bench.common import (
    LoadSampler,
    cpu_seconds,
    median,
    percentile,
    remove_work_dir,
    table,
    work_dir,
    write_result,
)
from hotspare.camerasim.launcher import CameraSim
from hotspare.config.models import CameraConfig
from hotspare.recorder.source import CameraSource
from tests.support.site import RtspHolders

GOP_S = 1.0  # the simulator's GOP here (`gop="1s"` below)
RAW_STEPS = ("options", "describe", "setup", "play", "first_rtp", "first_keyframe")
PYAV_STEPS = ("open", "first_packet", "first_keyframe")


class _Rtsp:
    """Just enough RTSP 1.0 over one TCP connection (interleaved RTP) to time each step."""

    def __init__(self, url: str, timeout: float) -> None:
        m = re.match(r"rtsp://([^:/]+):(\d+)(/.*)?$", url)
        assert m, url
        self.url = url
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout)
        self.buf = b""
        self.cseq = 0
        self.session: str | None = None

    def request(self, method: str, url: str, headers: dict[str, str] | None = None
                ) -> tuple[dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: bench"]
        if self.session:
            lines.append(f"Session: {self.session}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            head, body = self._response()
            if head.get("cseq") == str(self.cseq):
                return head, body

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed")
        self.buf += data

    def _response(self) -> tuple[dict[str, str], bytes]:
        while True:
            if self.buf[:1] == b"$":  # interleaved data before the answer: skip it
                self._frame()
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill()
        lines = self.buf[:end].decode(errors="replace").split("\r\n")
        self.buf = self.buf[end + 4:]
        head = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        head["status"] = lines[0]
        length = int(head.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return head, body

    def _frame(self) -> tuple[int, bytes]:
        while len(self.buf) < 4:
            self._fill()
        channel, length = self.buf[1], struct.unpack(">H", self.buf[2:4])[0]
        while len(self.buf) < 4 + length:
            self._fill()
        payload, self.buf = self.buf[4:4 + length], self.buf[4 + length:]
        return channel, payload

    def rtp(self) -> bytes:
        """The next RTP packet's payload on channel 0 (video)."""
        while True:
            while self.buf[:1] not in (b"$",):
                if not self.buf:
                    self._fill()
                    continue
                self._response()  # an RTSP message between frames (none expected)
            channel, packet = self._frame()
            if channel == 0 and len(packet) > 12:
                cc = packet[0] & 0x0F
                return packet[12 + 4 * cc:]

    def close(self) -> None:
        self.sock.close()


def _is_idr(payload: bytes) -> bool:
    nal = payload[0] & 0x1F
    if nal == 5:
        return True
    if nal == 28 and len(payload) > 1:  # FU-A: the fragment's own type
        return payload[1] & 0x1F == 5
    if nal == 24:  # STAP-A
        i = 1
        while i + 2 < len(payload):
            size = struct.unpack(">H", payload[i:i + 2])[0]
            if payload[i + 2] & 0x1F == 5:
                return True
            i += 2 + size
    return False


def raw_session(url: str, t0: float, out: dict[str, float], timeout: float) -> None:
    def mark(step: str) -> None:
        out[step] = time.monotonic() - t0

    rtsp = _Rtsp(url, timeout)
    try:
        rtsp.request("OPTIONS", url)
        mark("options")
        _, sdp = rtsp.request("DESCRIBE", url, {"Accept": "application/sdp"})
        mark("describe")
        text = sdp.decode(errors="replace")
        video = text[text.find("m=video"):]
        control = re.search(r"a=control:(\S+)", video)
        track = control.group(1) if control else ""
        track_url = track if track.startswith("rtsp://") else url.rstrip("/") + "/" + track
        head, _ = rtsp.request("SETUP", track_url,
                               {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        rtsp.session = head.get("session", "").split(";")[0]
        mark("setup")
        rtsp.request("PLAY", url, {"Range": "npt=0.000-"})
        mark("play")
        payload = rtsp.rtp()
        mark("first_rtp")
        while not _is_idr(payload):
            payload = rtsp.rtp()
        mark("first_keyframe")
    finally:
        rtsp.close()


def pyav_session(url: str, t0: float, out: dict[str, float], timeout: float,
                 old_probe: bool = False) -> None:
    source = CameraSource.from_config(CameraConfig(id="bench", url=url))
    if old_probe:
        options = {k: v for k, v in source.ffmpeg_options(timeout).items() if k != "max_ts_probe"}
        container = av.open(url, options=options)
    else:
        container = source.open(timeout)
    try:
        out["open"] = time.monotonic() - t0
        for packet in container.demux(container.streams.video[0]):
            if not packet.size:
                continue
            out.setdefault("first_packet", time.monotonic() - t0)
            if packet.is_keyframe:
                out["first_keyframe"] = time.monotonic() - t0
                return
    finally:
        container.close()


def run_round(kind: str, urls: list[str], timeout: float) -> list[dict[str, float]]:
    """Open every session at the same instant; one timing dict per session."""
    session = (raw_session if kind == "raw" else
               functools.partial(pyav_session, old_probe=kind == "pyav-old-probe"))
    results: list[dict[str, float]] = [{} for _ in urls]
    errors: list[str] = []
    start = threading.Barrier(len(urls) + 1)
    t0_box: list[float] = []

    def one(i: int) -> None:
        start.wait()
        try:
            session(urls[i], t0_box[0], results[i], timeout)
        except Exception as exc:  # reported, the others still count
            errors.append(f"{urls[i]}: {exc!r}")

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    t0_box.append(time.monotonic())
    start.wait()
    for thread in threads:
        thread.join(timeout + 5.0)
    for error in errors:
        print(f"   {kind}: {error}", flush=True)
    return results


def late_gop(results: list[dict[str, float]], gop_s: float) -> int:
    """Sessions whose first keyframe came over half a GOP after the round's median one."""
    firsts = [r["first_keyframe"] for r in results if "first_keyframe" in r]
    middle = median(firsts)
    return 0 if middle is None else sum(f > middle + gop_s / 2 for f in firsts)


def summary(results: list[dict[str, float]], steps: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for step in steps:
        values = [r[step] for r in results if step in r]
        out[step] = {"n": len(values), "median": median(values),
                     "p95": percentile(values, 0.95), "max": max(values) if values else None}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale.sessions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=64)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--bitrate", type=int, default=2000, help="kbit/s per camera")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--old-probe", action="store_true",
                   help="also open with the stream probe as it was before max_ts_probe=1")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    kinds = [("raw", RAW_STEPS), ("pyav", PYAV_STEPS)]
    if args.old_probe:
        kinds.append(("pyav-old-probe", PYAV_STEPS))
    sampler = LoadSampler().__enter__()
    print(f"{args.cameras} sessions at once, {args.width}x{args.height} {args.fps} fps "
          f"{args.bitrate} kbit/s; {sampler.line()}", flush=True)
    work = work_dir("scale-sessions")
    rounds: list[dict[str, Any]] = []
    try:
        with CameraSim(work / "camsim", cameras=args.cameras, width=args.width,
                       height=args.height, fps=args.fps, gop=f"{GOP_S:g}s",
                       bitrate_kbps=args.bitrate) as sim:
            urls = [sim.rtsp_url(c) for c in sim.camera_ids]
            with RtspHolders(urls):
                time.sleep(3.0)  # every stream playing to its holder, as before a crash
                for index in range(args.rounds):
                    for kind, steps in kinds:
                        sim_cpu = cpu_seconds(sim.pid)
                        client_cpu = time.process_time()
                        t = time.monotonic()
                        results = run_round(kind, urls, args.timeout)
                        wall = time.monotonic() - t
                        row: dict[str, Any] = {"round": index, "kind": kind, "sessions": len(urls),
                               "wall_s": round(wall, 3),
                               "sim_cpu_s": round(cpu_seconds(sim.pid) - sim_cpu, 3),
                               "client_cpu_s": round(time.process_time() - client_cpu, 3),
                               "late_gop": late_gop(results, GOP_S),
                               "steps": summary(results, steps)}
                        rounds.append(row)
                        print(f"   round {index} {kind}: " + ", ".join(
                            f"{s} {v['median']:.3f}/{v['max']:.3f}"
                            for s, v in row["steps"].items() if v["n"])
                            + f"; client CPU {row['client_cpu_s']:.2f} s, "
                            f"late GOP {row['late_gop']}", flush=True)
                        time.sleep(2.0)
    finally:
        remove_work_dir(work, keep=False)
    load = sampler.stop()
    rows = []
    for kind, steps in kinds:
        for step in steps:
            values = [r["steps"][step] for r in rounds if r["kind"] == kind
                      and r["steps"][step]["n"]]
            if values:
                rows.append([kind, step, f"{median([v['median'] for v in values]):.3f}",
                             f"{max(v['max'] for v in values):.3f}"])
    print(table(["client", "step (s after the common start)", "median", "max"], rows))
    print(sampler.line())
    stream = {k: v for k, v in vars(args).items() if k != "out"}
    write_result("scale-sessions", {"stream": stream, "rounds": rounds}, started=started,
                 load=load, quick=False, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
