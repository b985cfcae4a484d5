"""The recorder engine: RTSP in, fragmented-MP4 segments out, copy only, one worker per camera."""

from hotspare.recorder.engine import Recorder
from hotspare.recorder.health import CameraHealth, CameraState

__all__ = ["CameraHealth", "CameraState", "Recorder"]
