"""Recording cost: hotspare's recorder (PyAV in process) against one `ffmpeg -c copy` per camera."""
