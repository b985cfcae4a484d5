"""Ending a blocked FFmpeg read from another thread (recorder/read_interrupt.py) and the guard
that decides when (recorder/late_drops.py): against the installed PyAV, whose private timeout
field the interrupt writes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import cast

import av
import numpy as np
import pytest

from hotspare.recorder.late_drops import STUCK_DROPS, LateDropGuard
from hotspare.recorder.read_interrupt import ReadInterrupt, _find, open_interruptible
from hotspare.recorder.rtp_loss import LossWatch

DROP = (24, "rtsp", "RTP: dropping old packet received too late\n")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Noise, so the file is larger than FFmpeg's I/O buffer: reads go back to the protocol,
    where FFmpeg checks the interrupt callback."""
    path = tmp_path_factory.mktemp("clip") / "noise.mp4"
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(100):
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_an_interruptible_open_reads_everything_when_not_fired(clip: Path) -> None:
    container, interrupt = open_interruptible(str(clip), {}, 30.0)
    try:
        assert interrupt is not None, "read_interrupt does not know this PyAV's layout"
        assert sum(1 for p in container.demux(video=0) if p.size) == 100
        assert not interrupt.fired
    finally:
        container.close()


def test_firing_ends_the_read_with_exit_error(clip: Path) -> None:
    container, interrupt = open_interruptible(str(clip), {}, 30.0)
    try:
        assert interrupt is not None
        read = 0
        with pytest.raises(av.ExitError):
            for packet in container.demux(video=0):
                read += bool(packet.size)
                if read == 5:
                    interrupt.fire()
        assert 5 <= read < 100
    finally:
        container.close()  # still closes cleanly after the interrupt


def test_a_field_is_taken_only_where_its_neighbours_and_values_say_so(clip: Path) -> None:
    container, interrupt = open_interruptible(str(clip), {}, 30.0)
    try:
        assert interrupt is not None
        stranger = 30.0 + float(len(str(clip)))  # not the marker the container holds
        assert _find(container, stranger, 0.0, 1e18) is None
        marker = container.open_timeout
        assert _find(container, marker, 0.0, 1e18) is not None
        assert _find(container, marker, 1e17, 1e18) is None  # a start time outside the open
    finally:
        container.close()


class _Watch:
    """A LossWatch as the guard sees it: frames handed over, late drops pending."""

    def __init__(self) -> None:
        self.frames_judged = 0
        self.drops = 0

    def late_drops_pending(self) -> int:
        return self.drops


class _Interrupt:
    def __init__(self) -> None:
        self.fired = 0

    def fire(self) -> None:
        self.fired += 1


def _guarded() -> tuple[LateDropGuard, _Watch, _Interrupt, list[int]]:
    guard, watch, interrupt, said = LateDropGuard(check_seconds=3600), _Watch(), _Interrupt(), []
    guard.watch(cast(LossWatch, watch), cast(ReadInterrupt, interrupt), said.append)
    return guard, watch, interrupt, said


def test_a_session_dropping_every_packet_between_two_looks_is_ended_once() -> None:
    guard, watch, interrupt, said = _guarded()
    watch.drops = 3
    guard.check()
    assert not interrupt.fired  # one look is not enough
    watch.drops = STUCK_DROPS
    guard.check()
    assert interrupt.fired == 1 and said == [STUCK_DROPS]
    watch.drops += 50
    guard.check()
    assert interrupt.fired == 1  # forgotten once ended


def test_stragglers_while_frames_come_out_end_nothing() -> None:
    guard, watch, interrupt, _said = _guarded()
    for _ in range(5):
        watch.drops = STUCK_DROPS + 5  # late drops pending at every look ...
        guard.check()
        watch.frames_judged += 1  # ... but frames keep coming out between looks
    assert not interrupt.fired
    watch.drops = STUCK_DROPS - 1  # no frame out, yet too few drops
    guard.check()
    guard.check()
    assert not interrupt.fired


def test_an_unwatched_session_is_left_alone() -> None:
    guard, watch, interrupt = LateDropGuard(check_seconds=3600), _Watch(), _Interrupt()
    unwatch = guard.watch(cast(LossWatch, watch), cast(ReadInterrupt, interrupt), print)
    unwatch()
    watch.drops = STUCK_DROPS * 2
    guard.check()
    guard.check()
    assert not interrupt.fired


def test_the_loss_watch_counts_late_drops_from_any_thread() -> None:
    watch = LossWatch("cam").start()
    try:
        logs = watch._logs
        logs.extend([DROP] * 4 + [(24, "rtsp", "RTP: missed 3 packets\n")])
        counted: list[int] = []
        reader = threading.Thread(target=lambda: counted.append(watch.late_drops_pending()))
        reader.start()
        reader.join()
        assert counted == [4]
    finally:
        watch.stop()
