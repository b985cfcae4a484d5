"""Start and drive a simulated-camera process from the product's own interpreter.

The simulator itself runs under Debian's python with GStreamer (`python -m hotspare.camerasim`);
this launcher only spawns it, waits for its READY line, calls its control API and reads its frame
logs, so the demo and the tests start cameras the same way.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from hotspare.camerasim.framelog import FrameRecord, log_path, read_frame_log
from hotspare.camerasim.interpreter import check_gstreamer, sim_command, sim_env
from hotspare.camerasim.options import READY_PREFIX, parse_stream_spec

__all__ = ["CameraSim", "CameraSimError", "FrameRecord"]


def _stream_args(stream: str, streams: Mapping[str, str] | None) -> list[str]:
    """Options for the stream specs; a bad spec raises ValueError here, in the test, rather
    than in the sim's stderr."""
    spec = parse_stream_spec(stream)
    args = ["--codec", spec.codec, "--bframes", str(spec.bframes), "--slices", str(spec.slices),
            "--audio", spec.audio]  # fmt: skip
    for cid, text in (streams or {}).items():
        parse_stream_spec(text, spec)
        args += ["--camera-stream", f"{cid}:{text}"]
    return args


class CameraSimError(RuntimeError):
    """The simulator did not start or answer; the message carries its stderr tail."""


class CameraSim:
    """One simulator process with N cameras; a context manager that always cleans up."""

    def __init__(
        self,
        work_dir: Path,
        cameras: int | Sequence[str] = 2,
        *,
        width: int = 640,
        height: int = 360,
        fps: int = 25,
        gop: str = "1s",
        bitrate_kbps: int = 1000,
        clip_seconds: float = 4.0,
        rtsp_port: int = 0,
        control_port: int = 0,
        cache_dir: Path | None = None,
        max_sessions: Mapping[str, int] | None = None,
        stream: str = "",
        streams: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 120.0,
    ) -> None:
        """max_sessions: camera id -> most concurrent RTSP sessions it serves (more get 503).

        stream: what every camera sends, e.g. "codec=h265,bframes=2,slices=4,audio=pcmu" (any
        subset; default H.264, no B-frames, one slice, no audio); streams: camera id -> the same
        for one camera, on top of stream.
        """
        self.work_dir = work_dir
        self.log_dir = work_dir / "frames"
        if isinstance(cameras, int):
            self.camera_ids = [f"cam-{i}" for i in range(1, cameras + 1)]
        else:
            self.camera_ids = list(cameras)
        self.fps = fps
        self._args = [
            "--camera-ids", ",".join(self.camera_ids),
            "--width", str(width), "--height", str(height), "--fps", str(fps),
            "--gop", gop, "--bitrate", str(bitrate_kbps), "--clip-seconds", str(clip_seconds),
            "--rtsp-port", str(rtsp_port), "--control-port", str(control_port),
            "--log-dir", str(self.log_dir),
            *(["--cache-dir", str(cache_dir)] if cache_dir is not None else []),
            *(a for cid, n in (max_sessions or {}).items()
              for a in ("--max-sessions", f"{cid}={n}")),
            *_stream_args(stream, streams),
            *extra_args,
        ]  # fmt: skip
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}
        self.rtsp_port = 0
        self.control_port = 0
        self.host = "127.0.0.1"

    # ----------------------------------------------------------------------------- lifecycle

    def start(self) -> CameraSim:
        problem = check_gstreamer()
        if problem is not None:
            raise CameraSimError(problem)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._stderr_path = self.work_dir / "camsim.stderr"
        stderr = self._stderr_path.open("w")
        try:
            self.proc = subprocess.Popen(
                sim_command(self._args),
                env=sim_env(),
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,  # a ^C in pytest must not hit the sim before we stop it
            )
        finally:
            stderr.close()
        line_box: list[str] = []
        got = threading.Event()
        proc = self.proc

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(READY_PREFIX) and not got.is_set():
                    line_box.append(line)
                    got.set()
            got.set()

        threading.Thread(target=drain, name="camsim-stdout", daemon=True).start()
        if not got.wait(self.ready_timeout) or not line_box:
            self.stop()
            raise CameraSimError(f"camera sim did not get ready: {self.stderr_tail()}")
        self.ready = json.loads(line_box[0][len(READY_PREFIX) :])
        self.rtsp_port = int(self.ready["rtsp_port"])
        self.control_port = int(self.ready["control_port"])
        self.host = str(self.ready.get("bind", "127.0.0.1"))
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; returns the exit code (None if never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the simulator (a camera box losing power); frame logs keep what was flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5.0)

    def __enter__(self) -> CameraSim:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._stderr_path.read_text().splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""

    # ---------------------------------------------------------------------------- addresses

    def rtsp_url(self, camera_id: str) -> str:
        return f"rtsp://{self.host}:{self.rtsp_port}/{camera_id}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    # ------------------------------------------------------------------------------- control

    def _call(self, method: str, path: str, timeout: float = 10.0) -> Any:
        data = b"" if method == "POST" else None
        req = urllib.request.Request(self.control_url + path, method=method, data=data)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise CameraSimError(f"{method} {path}: {exc.code} {exc.read().decode()}") from exc

    def status(self) -> list[dict[str, Any]]:
        """Per camera: id, online, frames_produced, frames_delivered, clients, streaming, ..."""
        return list(self._call("GET", "/cameras")["cameras"])

    def camera_status(self, camera_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/cameras/{camera_id}"))

    def offline(self, camera_id: str, seconds: float | None = None) -> dict[str, Any]:
        """Drop the camera's sessions and refuse new ones (for `seconds`, or until online())."""
        query = "" if seconds is None else f"?seconds={seconds}"
        return dict(self._call("POST", f"/cameras/{camera_id}/offline{query}"))

    def stall(self, camera_id: str, seconds: float | None = None) -> dict[str, Any]:
        """Keep the camera's sessions (and RTCP) but send no video for `seconds` (or until
        online()): a camera whose encoder hung."""
        query = "" if seconds is None else f"?seconds={seconds}"
        return dict(self._call("POST", f"/cameras/{camera_id}/stall{query}"))

    def restart_stream(self, camera_id: str, *, close: bool = False, new_ssrc: bool = False,
                       down_s: float = 0.0, seq_below: bool = False) -> dict[str, Any]:
        """The camera restarts its stream: in session (new RTP timestamp and sequence bases from
        the next keyframe, a new SSRC with `new_ssrc`, a sequence base that reads as older than
        the last with `seq_below`), or with `close` its connections dropped and refused for
        `down_s` (a reboot). Frame numbers go on."""
        query = f"?close={int(close)}&ssrc={int(new_ssrc)}&seconds={down_s}"
        if seq_below:
            query += "&seq=below"
        return dict(self._call("POST", f"/cameras/{camera_id}/restart{query}"))

    def change_resolution(self, camera_id: str, width: int, height: int) -> dict[str, Any]:
        """From the next keyframe on, the camera sends `width`x`height` (new SPS/PPS in the same
        session); returns once the clip is ready (encoded the first time: seconds)."""
        return dict(self._call("POST", f"/cameras/{camera_id}/resolution?width={width}"
                                       f"&height={height}", timeout=120.0))

    def online(self, camera_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/cameras/{camera_id}/online"))

    def set_max_sessions(self, camera_id: str, limit: int | None) -> dict[str, Any]:
        """Change the camera's session limit now (None: no limit); open sessions are kept."""
        query = "" if limit is None else f"?limit={limit}"
        return dict(self._call("POST", f"/cameras/{camera_id}/max_sessions{query}"))

    def wait_sessions(self, camera_id: str, count: int, timeout: float = 10.0) -> None:
        """Block until the camera holds `count` RTSP sessions (SETUP done, no TEARDOWN yet)."""
        self._wait_count(camera_id, "sessions", count, timeout)

    def wait_clients(self, camera_id: str, count: int, timeout: float = 10.0) -> None:
        self._wait_count(camera_id, "clients", count, timeout)

    def _wait_count(self, camera_id: str, key: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.camera_status(camera_id)[key] != count:
            if time.monotonic() > deadline:
                raise CameraSimError(f"{camera_id}: never had {count} {key}")
            time.sleep(0.05)

    # ---------------------------------------------------------------------------- frame log

    def frame_log_path(self, camera_id: str) -> Path:
        return log_path(self.log_dir, camera_id)

    def frames(self, camera_id: str) -> list[FrameRecord]:
        """Every frame flushed so far (the sim flushes about once a second)."""
        return list(read_frame_log(self.frame_log_path(camera_id)))

    def frames_between(
        self, camera_id: str, from_wall_us: int, to_wall_us: int, *, delivered_only: bool = True
    ) -> list[FrameRecord]:
        """Frames captured in [from_wall_us, to_wall_us); call wait_logged(to_wall_us) first."""
        return [
            r
            for r in read_frame_log(self.frame_log_path(camera_id))
            if from_wall_us <= r.wall_us < to_wall_us and (r.delivered or not delivered_only)
        ]

    def wait_logged(self, camera_id: str, wall_us: int, timeout: float = 5.0) -> None:
        """Block until the frame log holds a frame captured at or after wall_us."""
        deadline = time.monotonic() + timeout
        path = self.frame_log_path(camera_id)
        while True:
            last = None
            for last in read_frame_log(path):  # noqa: B007 - want the last one
                pass
            if last is not None and last.wall_us >= wall_us:
                return
            if time.monotonic() > deadline:
                raise CameraSimError(f"{camera_id}: frame log never reached {wall_us}")
            time.sleep(0.2)
