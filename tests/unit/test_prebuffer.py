"""The gapless pre-buffer: whole GOPs, horizon, memory cap, spill to disk, taking from a mark."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import av
import av.packet
import av.stream
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


def _audio_stream() -> av.stream.Stream:
    """A real audio stream for packets to belong to (the buffer tells audio by its stream)."""
    out = av.open(io.BytesIO(), "w", format="mp4")
    return out.add_stream("aac", rate=8000)


def _with_audio(audio: av.stream.Stream, frames: int) -> list[tuple[av.packet.Packet, int]]:
    """The video of `stream` with an audio packet (payload 9000 + n) after every frame."""
    out = []
    for n, (packet, recv_us) in enumerate(stream(frames)):
        out.append((packet, recv_us))
        sound = av.packet.Packet((9_000 + n).to_bytes(4, "big") * 25)
        sound.stream = audio
        sound.pts = sound.dts = n * 800
        out.append((sound, recv_us + 1))
    return out


@pytest.mark.parametrize("spill", [False, True], ids=["memory", "spilled"])
def test_audio_rides_with_its_gop_and_the_one_before_leads_in(tmp_path: Path,
                                                               spill: bool) -> None:
    audio = _audio_stream()
    buffer = PreBuffer(StandbySettings(horizon_s=3.0, max_bytes=12 * SIZE if spill else 10 << 20,
                                       max_spill_bytes=100 * SIZE if spill else 0,
                                       spill_dir=tmp_path), audio)
    sound = av.packet.Packet(b"early")
    sound.stream = audio
    buffer.add_audio(sound, 0)  # before any keyframe: not held
    assert buffer.bytes == 0
    for packet, recv_us in _with_audio(audio, 45):
        if buffer.is_audio(packet):
            buffer.add_audio(packet, recv_us)
        else:
            buffer.add(packet, recv_us)
    assert bool(buffer.spilled_bytes) is spill
    packets, covered = buffer.take_from(wall, 1_000_000_000 + 35 * FRAME_US)
    assert covered
    kinds = ["audio" if buffer.is_audio(p) else "video" for p, _ in packets]
    video = [int.from_bytes(bytes(p)[:4], "big") for p, _ in packets if not buffer.is_audio(p)]
    sounds = [int.from_bytes(bytes(p)[:4], "big") - 9_000 for p, _ in packets
              if buffer.is_audio(p)]
    assert video == list(range(30, 45))
    # The keyframe first, then the previous GOP's audio (the run keeps what starts at or after
    # the keyframe), then everything in arrival order.
    assert kinds[0] == "video" and sounds == list(range(20, 45))
    assert kinds[1:11] == ["audio"] * 10 and kinds[11:] == ["audio", "video"] * 14 + ["audio"]
    for packet, _ in packets:
        if buffer.is_audio(packet):
            n = int.from_bytes(bytes(packet)[:4], "big") - 9_000
            assert packet.pts == n * 800 and packet.time_base == audio.time_base
