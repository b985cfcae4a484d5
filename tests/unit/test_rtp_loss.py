"""`recorder.rtp_loss`: FFmpeg's RTP loss reports, heard only by the demux thread they concern."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import av.logging

from hotspare.recorder.rtp_loss import LossWatch, Unfit


@dataclass
class _Packet:
    is_keyframe: bool = False


def _ffmpeg_says(message: str, level: int = av.logging.WARNING) -> None:
    av.logging.log(level, "rtsp", message)  # through FFmpeg's av_log, as its RTP demuxer logs


def test_a_loss_damages_the_next_frame_and_the_rest_up_to_a_keyframe() -> None:
    with LossWatch("cam") as watch:
        assert watch.judge(_Packet()) is None
        _ffmpeg_says("RTP: missed 4 packets\n")
        _ffmpeg_says("RTP: missed 4 packets\n")  # the same line twice is two losses, not one
        assert watch.judge(_Packet(is_keyframe=True)) is Unfit.DAMAGED  # even a keyframe
        assert watch.judge(_Packet()) is Unfit.UNREFERENCED
        _ffmpeg_says("max delay reached. need to consume packet\n")  # not a loss by itself
        assert watch.judge(_Packet()) is Unfit.UNREFERENCED
        assert watch.judge(_Packet(is_keyframe=True)) is None
        assert watch.judge(_Packet()) is None
        _ffmpeg_says("RTP: PT=60: bad cseq 1234 expected=0042\n", av.logging.ERROR)
        assert watch.judge(_Packet()) is Unfit.DAMAGED
    assert (watch.packets_lost, watch.losses) == (9, 3)


def test_another_threads_loss_is_not_heard() -> None:
    with LossWatch("cam-a") as watch:
        other = threading.Thread(target=_ffmpeg_says, args=("RTP: missed 7 packets\n",))
        other.start()
        other.join()
        assert watch.judge(_Packet()) is None
    assert watch.packets_lost == 0
