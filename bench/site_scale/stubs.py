"""What stands in for video in the site benchmark: commit schedule, recorder, a node's HTTP side.

A simulated recording server has no camera and writes no file. Its `SyntheticCommits` says, from
the clock alone, what a recorder with `segment_seconds` segments would have committed by now (each
camera at its own phase, so watermarks move every second as on a real server), and that is what
the real `ServerAgent` reads as the recorder's health. A spare that takes over gets a
`StubRecorder` whose cameras all record at once. `NodeHttp` answers the two calls other nodes make
to a recording server in this benchmark: the spares' health probe and the master's timeline
question, in the product's own wire models; closing it makes the port refuse connections, which
is what a spare sees when the process is dead.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hotspare.config.models import CameraConfig
from hotspare.recorder.health import CameraHealth, CameraState
from hotspare.wire import CameraHealthOut, HealthOut, TimelineOut, TimelineRunOut

HEALTH_PATH = "/api/v1/health"
TIMELINE_PREFIX = "/api/v1/cameras/"


def _wall_us() -> int:
    return time.time_ns() // 1000


HEALTH_REFRESH_SECONDS = 1.0
"""How long a built health snapshot is reused. A real recorder's snapshot is its own server's
cost, on its own machine; here 200 servers' agents ask 5 times a second each on one host
(1 000 snapshots of 50 cameras a second), so it is rebuilt once a second — as often as the agent
publishes watermarks, which therefore still move at the real rate."""


class SyntheticCommits:
    """Per camera: committed segments and the commit watermark a recorder would have by now."""

    def __init__(self, server: str, cameras: Sequence[str], segment_seconds: float,
                 started_us: int | None = None) -> None:
        self.server = server
        self.cameras = list(cameras)
        self.segment_us = int(segment_seconds * 1e6)
        self.started_us = _wall_us() if started_us is None else started_us
        self.phase_us = {c: zlib.crc32(c.encode()) % self.segment_us for c in self.cameras}
        self.run_id = f"{server}-{self.started_us}"
        self._health: Mapping[str, CameraHealth] = {}
        self._health_at = float("-inf")

    def committed(self, camera: str, now_us: int) -> tuple[int, int | None]:
        """(segments committed, end of the last one)."""
        first_end = self.started_us + self.phase_us[camera]
        if now_us < first_end:
            return 0, None
        count = 1 + (now_us - first_end) // self.segment_us
        return count, first_end + (count - 1) * self.segment_us

    def health(self) -> Mapping[str, CameraHealth]:
        """At most `HEALTH_REFRESH_SECONDS` old (see there)."""
        if time.monotonic() - self._health_at >= HEALTH_REFRESH_SECONDS:
            self._health = self._build_health()
            self._health_at = time.monotonic()
        return self._health

    def _build_health(self) -> Mapping[str, CameraHealth]:
        now = _wall_us()
        out = {}
        for camera in self.cameras:
            count, until = self.committed(camera, now)
            out[camera] = CameraHealth(
                camera_id=camera, state=CameraState.RECORDING, last_frame_wall_us=now,
                last_commit_wall_us=until, committed_until_wall_us=until, run_id=self.run_id,
                segments_committed=count, frames_recorded=count)
        return out

    def timeline(self, camera: str, from_us: int, to_us: int) -> TimelineOut:
        """One run from the start to the last commit (the stub loses nothing)."""
        _count, until = self.committed(camera, _wall_us())
        runs = []
        start, end = max(from_us, self.started_us), min(to_us, until or self.started_us)
        if end > start:
            segments = max(1, (end - start) // self.segment_us)
            runs.append(TimelineRunOut(run_id=self.run_id, recorded_by=self.server,
                                       recorded_as=self.server, start_wall_us=start,
                                       end_wall_us=end, segment_count=segments,
                                       frame_count=segments * 100))
        return TimelineOut(camera_id=camera, from_wall_us=from_us, to_wall_us=to_us, runs=runs,
                           gaps=[])


class StubRecorder:
    """The takeover recorder of a simulated spare: every camera records from the start."""

    def __init__(self, server: str, cameras: Sequence[CameraConfig], store: Any,
                 recording: Any, standby: Mapping[str, Any] | None = None, **_: Any) -> None:
        self.commits = SyntheticCommits(server, [c.id for c in cameras],
                                        getattr(recording, "segment_seconds", 4.0))
        for worker in (standby or {}).values():  # sessions handed over are not adopted: ended
            worker.request_stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def health(self) -> Mapping[str, CameraHealth]:
        return self.commits.health()

    def update_cameras(self, cameras: Sequence[CameraConfig]) -> None:
        self.commits = SyntheticCommits(self.commits.server, [c.id for c in cameras],
                                        self.commits.segment_us / 1e6, self.commits.started_us)

    def workers(self) -> dict[str, Any]:
        return {}


def health_body(server: str, health: Mapping[str, CameraHealth]) -> bytes:
    cameras = [CameraHealthOut(camera_id=cid, state=h.state,
                               last_frame_wall_us=h.last_frame_wall_us,
                               last_commit_wall_us=h.last_commit_wall_us, run_id=h.run_id)
               for cid, h in sorted(health.items())]
    ok = all(h.state is CameraState.RECORDING for h in health.values())
    return HealthOut(server_name=server, ok=ok, cameras=cameras,
                     checked_wall_us=_wall_us()).model_dump_json().encode()


class NodeHttp:
    """A minimal HTTP/1.1 keep-alive responder on the node's port, run on a shared event loop.

    The health answer is rebuilt at most once a second (a real node builds it per probe; its cost
    is the server's own, on its own machine, and is left out here on purpose). It answers from an
    `asyncio.Protocol`, not streams: the spares' probes reach it ~1 600 times a second at 200
    servers, all on this host, and streams cost several times as much per request."""

    def __init__(self, loop: HttpLoop, server: str, port: int, commits: SyntheticCommits,
                 sock: socket.socket | None = None) -> None:
        """`sock`: the port already bound by the benchmark (no other process can take it between
        the site file naming it and the node listening on it); None binds `port` now."""
        self.loop = loop
        self.server = server
        self.port = port
        self._sock = sock
        self.commits = commits
        self.requests = 0
        self._body = b""
        self._body_at = 0.0
        self._listener: asyncio.Server | None = None
        self._transports: set[asyncio.Transport] = set()

    def start(self) -> None:
        self.loop.call(self._start())

    def close(self) -> None:
        """Refuse from now on and reset open connections, as a dead process's port does."""
        self.loop.call(self._close())

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            sock, self._sock = self._sock, None
            self._listener = await loop.create_server(lambda: _Responder(self), sock=sock,
                                                      backlog=256)
            return
        for _ in range(50):  # a revived node re-binds its port; another process may hold it
            try:
                self._listener = await loop.create_server(
                    lambda: _Responder(self), "127.0.0.1", self.port, reuse_address=True,
                    backlog=256)
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise OSError(f"{self.server}: port {self.port} stays taken; cannot revive")

    async def _close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    def _health(self) -> bytes:
        now = time.monotonic()
        if now - self._body_at >= 1.0:
            self._body = health_body(self.server, self.commits.health())
            self._body_at = now
        return self._body

    def _answer(self, target: str) -> tuple[int, bytes]:
        url = urlsplit(target)
        if url.path == HEALTH_PATH:
            return 200, self._health()
        if url.path.startswith(TIMELINE_PREFIX) and url.path.endswith("/timeline"):
            camera = url.path[len(TIMELINE_PREFIX):-len("/timeline")]
            if camera not in self.commits.phase_us:
                return 404, b'{"error":"unknown_camera","detail":"not on this server"}'
            query = parse_qs(url.query)
            now = _wall_us()
            to_us = int(query.get("to", [now])[0])
            from_us = int(query.get("from", [to_us - 3_600_000_000])[0])
            return 200, self.commits.timeline(camera, from_us, to_us).model_dump_json().encode()
        return 404, b'{"error":"not_found","detail":"not simulated by bench.site_scale"}'


class _Responder(asyncio.Protocol):
    """One connection to a `NodeHttp`: requests answered in order as their bytes arrive."""

    def __init__(self, node: NodeHttp) -> None:
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.node._transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.node._transports.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            self.buffer = self.buffer[end + 4 + length:]
            try:
                target = head.split(" ", 2)[1]
                status, body = self.node._answer(target)
            except (IndexError, ValueError):
                self.transport.close()
                return
            self.node.requests += 1
            self.transport.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (status, len(body), body))


class HttpLoop:
    """One asyncio loop thread serving every simulated node's port in this process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="node-http",
                                        daemon=True)
        self._thread.start()

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)


Clock = Callable[[], float]
