"""The gapless pre-buffer: whole GOPs, horizon, memory cap, spill to disk, taking from a mark."""

from __future__ import annotations

import itertools
from pathlib import Path

import av.packet
import pytest

from hotspare.recorder.prebuffer import PreBuffer, StandbySettings

FRAME_US = 100_000  # 10 fps
GOP = 10  # one keyframe a second
SIZE = 1_000


def stream(frames: int, start: int = 0) -> list[tuple[av.packet.Packet, int]]:
    """`frames` packets at 10 fps; payload = frame number, pts in 90 kHz; keyframe every GOP."""
    out = []
    for n in range(start, start + frames):
        packet = av.packet.Packet(n.to_bytes(4, "big") * (SIZE // 4))
        packet.pts = packet.dts = n * 9_000
        packet.is_keyframe = n % GOP == 0
        out.append((packet, 1_000_000_000 + n * FRAME_US))
    return out


def fill(buffer: PreBuffer, packets: list[tuple[av.packet.Packet, int]]) -> None:
    for packet, recv_us in packets:
        buffer.add(packet, recv_us)


def numbers(packets: list[tuple[av.packet.Packet, int]]) -> list[int]:
    return [int.from_bytes(bytes(p)[:4], "big") for p, _ in packets]


def wall(pts: int | None, recv_us: int) -> int:
    return recv_us


def test_keeps_whole_gops_reaching_back_the_horizon() -> None:
    buffer = PreBuffer(StandbySettings(horizon_s=3.0, max_bytes=10 << 20))
    fill(buffer, stream(5, start=5) + stream(95, start=10))  # starts mid-GOP: 5 frames skipped
    assert buffer.skipped_before_keyframe == 5
    now = 1_000_000_000 + 104 * FRAME_US
    assert 3.0 <= buffer.seconds(now) < 4.0 + 0.01
    packets, covered = buffer.take_from(wall, None)
    got = numbers(packets)
    assert covered and got[0] % GOP == 0 and packets[0][0].is_keyframe
    assert got == list(range(got[0], 105))
    assert not buffer.short_by_cap


def test_memory_cap_without_disk_shortens_the_buffer_and_says_so() -> None:
    buffer = PreBuffer(StandbySettings(horizon_s=5.0, max_bytes=25 * SIZE))
    fill(buffer, stream(100))
    assert buffer.short_by_cap
    packets, _ = buffer.take_from(wall, None)
    got = numbers(packets)
    assert got == list(range(got[0], 100)) and got[0] % GOP == 0
    assert len(got) <= 25 + GOP  # the cap, give or take the newest GOP


def test_spills_to_disk_and_reads_back_exactly(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    buffer = PreBuffer(StandbySettings(horizon_s=3.0, max_bytes=12 * SIZE,
                                       max_spill_bytes=100 * SIZE, spill_dir=spill))
    sent = stream(62)
    expected = {numbers([(p, 0)])[0]: (p.pts, p.dts, p.is_keyframe, bytes(p)) for p, _ in sent}
    fill(buffer, sent)
    assert not buffer.short_by_cap
    assert buffer.bytes <= 12 * SIZE + GOP * SIZE and buffer.spilled_bytes > 0
    assert list(spill.iterdir())
    packets, covered = buffer.take_from(wall, None)
    got = numbers(packets)
    assert covered and got == list(range(got[0], 62)) and 62 - got[0] >= 30  # the horizon kept
    for packet, _ in packets:
        n = numbers([(packet, 0)])[0]
        assert (packet.pts, packet.dts, packet.is_keyframe, bytes(packet)) == expected[n]
    assert not list(spill.iterdir()), "spill files must go once taken"


def test_spill_cap_drops_oldest_first_never_a_hole(tmp_path: Path) -> None:
    buffer = PreBuffer(StandbySettings(horizon_s=6.0, max_bytes=12 * SIZE,
                                       max_spill_bytes=20 * SIZE, spill_dir=tmp_path))
    fill(buffer, stream(80))
    assert buffer.short_by_cap
    packets, _ = buffer.take_from(wall, None)
    got = numbers(packets)
    assert got == list(range(got[0], 80)) and got[0] % GOP == 0


@pytest.mark.parametrize(("watermark_frame", "first", "covered"),
                         [(47, 40, True), (50, 50, True), (3, 30, False)])
def test_take_from_the_last_keyframe_at_or_before_the_watermark(
        watermark_frame: int, first: int, covered: bool) -> None:
    buffer = PreBuffer(StandbySettings(horizon_s=3.0, max_bytes=10 << 20))
    fill(buffer, stream(64))
    packets, reached = buffer.take_from(wall, 1_000_000_000 + watermark_frame * FRAME_US)
    assert numbers(packets)[0] == first and reached is covered
    assert numbers(packets)[-1] == 63


def test_close_deletes_spill_files(tmp_path: Path) -> None:
    buffer = PreBuffer(StandbySettings(horizon_s=3.0, max_bytes=12 * SIZE,
                                       max_spill_bytes=100 * SIZE, spill_dir=tmp_path))
    fill(buffer, stream(40))
    assert any(itertools.islice(tmp_path.iterdir(), 1))
    buffer.close()
    assert not list(tmp_path.iterdir()) and buffer.seconds(0) == 0.0
