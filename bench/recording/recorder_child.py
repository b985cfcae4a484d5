"""The process under test for hotspare: one Recorder into a fresh store, until SIGTERM.

Kept as its own process so the benchmark measures exactly what a node would spend (threads,
PyAV, SQLite, fsync), apart from the simulator and the measuring parent.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import cast

from bench.recording.floor import start_floors
from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder import Recorder
from hotspare.recorder.store_protocol import RecorderStore
from hotspare.store.segment_store import SegmentStore

VARIANT_SETTINGS: dict[str, dict[str, object]] = {
    "default": {},
    "no-flush": {"flush_every_frame": False},
    "no-index": {},
    "frag200": {"fragment_seconds": 0.2},
    "frag100": {"fragment_seconds": 0.1},
    "pyav-demux": {},
    "pyav-remux": {},
    "pyav-remux200": {"fragment_seconds": 0.2},
    "udp": {},
    "pyav-demux-udp": {},
    "pyav-demux-udp-interruptible": {},
    "pyav-demux-udp-pyavtimeout": {},
}
"""[recording] settings per variant. default: the product as shipped. no-flush: FFmpeg's I/O
buffer instead of a flush per frame (cheaper, but a crash loses more). no-index: commit_segment
does nothing, to show what the store's fsync + SHA-256 + parse + SQLite cost (a bench-only store
wrapper, not a setting). frag200: one fragment per 200 ms instead of per frame (a crash loses up
to 200 ms + a frame instead of one frame). frag100: the same with 100 ms fragments. pyav-*: not
the recorder but bare PyAV loops (demux only; demux + the recorder's writer, per frame or 200 ms
fragments), the floors of bench/recording/floor.py. udp, pyav-demux-udp: the recorder as shipped and
the bare demux with the cameras' `transport = "udp"` (RTP over UDP instead of interleaved in the
RTSP TCP connection: one `recvfrom` per RTP packet instead of three `poll` + `recvfrom` pairs).
pyav-demux-udp-interruptible, pyav-demux-udp-pyavtimeout: the bare UDP demux opened as the recorder
opens a UDP camera (FFmpeg's interrupt callback installed, idle during reads), and with PyAV's own
read timeout (the callback takes the GIL on every check): what ending a stuck UDP read costs
(docs/recorder.md, *Camera faults*)."""
VARIANT_TRANSPORT = {"udp": "udp", "pyav-demux-udp": "udp", "pyav-demux-udp-interruptible": "udp",
                     "pyav-demux-udp-pyavtimeout": "udp"}
VARIANT_OPEN_MODE = {"pyav-demux-udp-interruptible": "session",
                     "pyav-demux-udp-pyavtimeout": "pyav-timeout"}
VARIANTS = tuple(VARIANT_SETTINGS)


class _NoIndexStore:
    """The real store for runs and paths, but segments are left unindexed (bench only)."""

    def __init__(self, store: SegmentStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def commit_segment(self, *args: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--segment-seconds", type=float, default=4.0)
    p.add_argument("--variant", choices=VARIANTS, default="default")
    p.add_argument("--threads-file", type=Path, default=None,
                   help="write {native thread id: name} here once recording (bench --counts)")
    p.add_argument("urls", nargs="+", help="camera_id=rtsp://...")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    transport = VARIANT_TRANSPORT.get(args.variant, "tcp")
    cameras = [CameraConfig(id=u.split("=", 1)[0], url=u.split("=", 1)[1], transport=transport)
               for u in args.urls]
    if args.variant.startswith("pyav-"):
        return _floor(args, cameras)
    store = SegmentStore.open(args.store, "bench")
    target = cast(RecorderStore, _NoIndexStore(store) if args.variant == "no-index" else store)
    settings = RecordingSettings.model_validate(
        {"segment_seconds": args.segment_seconds, **VARIANT_SETTINGS[args.variant]}
    )
    recorder = Recorder("bench", cameras, target, settings)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    recorder.start()
    _write_threads(args.threads_file)
    print("RECORDING", flush=True)
    done.wait()
    recorder.stop(timeout=30)
    states = {cid: h.state.value for cid, h in recorder.health().items()}
    store.close()
    json.dump({"states": states}, sys.stdout)
    return 0


def _floor(args: argparse.Namespace, cameras: list[CameraConfig]) -> int:
    settings = RecordingSettings.model_validate(
        {"segment_seconds": args.segment_seconds, **VARIANT_SETTINGS[args.variant]}
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    root = None if args.variant.startswith("pyav-demux") else args.store
    threads = start_floors(cameras, root, settings, done,
                           VARIANT_OPEN_MODE.get(args.variant, "plain"))
    _write_threads(args.threads_file)
    print("RECORDING", flush=True)
    done.wait()
    for t in threads:
        t.join(10)
    json.dump({"states": {}}, sys.stdout)
    return 0


def _write_threads(path: Path | None) -> None:
    """Python 3.11 does not name OS threads: the parent splits CPU by thread with this map."""
    if path is not None:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(names))
        tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
