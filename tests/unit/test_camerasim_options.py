"""The simulator's per-camera stream options (stdlib only, so no simulator process is needed)."""

from __future__ import annotations

import pytest

from hotspare.camerasim.options import (
    StreamSpec,
    parse_camera_streams,
    parse_stream_spec,
    stream_spec_text,
)


def test_clock_ppm_parses_round_trips_and_leaves_the_clip_alone() -> None:
    spec = parse_stream_spec("bframes=2,clock_ppm=-250")
    assert (spec.bframes, spec.clock_ppm) == (2, -250)
    assert parse_stream_spec(stream_spec_text(spec)) == spec
    assert "clock_ppm" not in stream_spec_text(StreamSpec())  # the default text is unchanged
    specs = parse_camera_streams(["fast:clock_ppm=3000"], StreamSpec(codec="h265"))
    assert specs["fast"] == StreamSpec(codec="h265", clock_ppm=3000)


@pytest.mark.parametrize(("text", "reason"), [
    ("clock_ppm=fast", "whole number"),
    ("clock_ppm=200000", "±100000"),
    ("clock_ppm=1.5", "whole number"),
])
def test_bad_clock_ppm_is_refused_naming_the_option(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as exc:
        parse_stream_spec(text)
    assert "clock_ppm" in str(exc.value)
