"""A real SIGKILL: a child process records into a store and dies mid-segment; we reopen it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hotspare.store import mp4
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import decode_count, write_segment

T0 = 1_700_000_000_000_000

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hotspare.store.segment_store import SegmentStore
    from hotspare.store.synth import record_segment
    root, source, cut = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    store = SegmentStore.open(root, "rs1")
    run = store.begin_run("cam1", "rs1", int(sys.argv[4]), "camera")
    record_segment(store, run, 0, 0, 10)
    # the recorder's muxer has written part of the next segment when the process is killed
    with open(store.segment_path("cam1", run.run_id, 1), "wb") as f:
        f.write(source.read_bytes()[:cut])
        f.flush()
        print(run.run_id, flush=True)
        time.sleep(60)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_segment(tmp_path: Path) -> None:
    source = tmp_path / "next.mp4"
    write_segment(source, 36_000, 12, gop=5)
    cut = mp4.parse_path(source).fragments[1].end + 100
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "store"), str(source),
                              str(cut), str(T0)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        assert run_id
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with SegmentStore.open(tmp_path / "store", "rs1") as store:  # the lock died with the child
        rep = store.last_reconcile
        assert rep is not None and (rep.salvaged, rep.runs_closed) == (1, 1)
        segs = store.list_segments("cam1", T0, T0 + 10**7)
        assert [(s.seq, s.frame_count) for s in segs] == [(0, 10), (1, 10)]
        assert segs[1].start_wall_us == T0 + 400_000
        assert decode_count(store.segment_file(segs[1])) == 10
        run = store.get_run(run_id)
        assert run is not None and run.end_reason == "crash"
        assert run.ended_wall_us == T0 + 800_000
