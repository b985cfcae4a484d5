"""pytest helpers that run the simulated cameras (`python -m hotspare.camerasim`) as a real process.

Use it like this::

    from tests.support.camsim import CameraSim

    def test_something(camera_sim: CameraSim) -> None:      # fixture from tests/conftest.py:
        # 2 cameras, 640x360, frame log in tmp_path
        url = camera_sim.rtsp_url("cam-1")
        ...
        sent = camera_sim.frames_between("cam-1", t0_us, t1_us, delivered_only=True)

    def test_big(tmp_path: Path) -> None:
        with CameraSim(tmp_path / "sim", cameras=8, width=1920, height=1080) as sim:
            ...

    def test_streams(tmp_path: Path) -> None:       # what the cameras send (docs/camera-sim.md)
        with CameraSim(tmp_path / "sim", ["a", "b"], stream="codec=h265",
                       streams={"b": "bframes=2,slices=4,audio=pcmu"}) as sim:
            ...

    def test_busy_camera(tmp_path: Path) -> None:   # cam-1 answers a second session with 503
        with CameraSim(tmp_path / "sim", cameras=2, max_sessions={"cam-1": 1}) as sim:
            sim.wait_sessions("cam-1", 1)            # ... once something holds its session
            sim.set_max_sessions("cam-1", None)      # no limit from now on

The simulator runs under Debian's python with GStreamer (HOTSPARE_SIM_PYTHON overrides); when that
is missing the test is skipped with the install hint, or fails under CI
(tests.support.prerequisites). The clip cache is shared across tests (system
temp dir), so only the first start with a new parameter set pays for encoding (~7 s at 1080p).
Every CameraSim stops its process on exit, also when the test fails (SIGTERM, SIGKILL after a
timeout).
"""

from __future__ import annotations

import time

from hotspare.camerasim import launcher
from hotspare.camerasim.interpreter import check_gstreamer
from hotspare.camerasim.launcher import CameraSimError, FrameRecord
from tests.support.prerequisites import missing_prerequisite

__all__ = [
    "CameraSim",
    "CameraSimError",
    "FrameRecord",
    "now_us",
    "require_gstreamer",
]

_GST_PROBLEM: list[str | None] = []


def require_gstreamer() -> None:
    """Skip the calling test (fail it under CI) when the sim interpreter lacks GStreamer; the
    interpreter is probed once per run."""
    if not _GST_PROBLEM:
        _GST_PROBLEM.append(check_gstreamer())
    if _GST_PROBLEM[0] is not None:
        missing_prerequisite(_GST_PROBLEM[0])


class CameraSim(launcher.CameraSim):
    """The product launcher; skips the test (with the install hint, failing it under CI) where
    GStreamer is missing."""

    def start(self) -> CameraSim:
        require_gstreamer()
        super().start()
        return self

    def __enter__(self) -> CameraSim:
        return self.start()


def now_us() -> int:
    """Wall clock in µs, the unit of the sim's frame log and the store."""
    return time.time_ns() // 1000
