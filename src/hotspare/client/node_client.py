"""A small typed client for one node's API, shared by the CLI, failover's re-insert and tests.

Responses are parsed into the same pydantic models the server declares, so a drift between client
and server fails loudly at the boundary instead of deep inside a caller. Files move as streams in
both directions: a segment is never held whole in memory.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from hotspare.client.pages import join_timelines, timeline_pages
from hotspare.tls import PeerTls
from hotspare.wire import (
    API_PREFIX,
    MAX_PAGE_ROWS,
    MAX_SEGMENT_RANGE_US,
    META_HEADER,
    HealthOut,
    ImportMetaIn,
    ImportOut,
    Problem,
    RunList,
    SegmentList,
    SegmentLists,
    SegmentOut,
    TimelineOut,
)

_CHUNK = 1 << 20
_Model = TypeVar("_Model", bound=BaseModel)


class NodeApiError(RuntimeError):
    """The node refused a request; `error` is its machine code, `detail` its operator text."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"HTTP {status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


def raise_for_problem(response: httpx.Response) -> None:
    """Turn a refusal into `NodeApiError` with the node's own code and operator text."""
    if response.is_success:
        return
    if not response.is_stream_consumed:
        response.read()
    try:
        problem = Problem.model_validate_json(response.content)
    except ValidationError:  # not one of ours: a proxy's page, or a node too old to say why
        raise NodeApiError(response.status_code, "http_error",
                           response.text[:500] or response.reason_phrase) from None
    raise NodeApiError(response.status_code, problem.error, problem.detail)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk


class NodeClient:
    """One node's API. `http` lets tests pass an in-process client (e.g. Starlette's TestClient)."""

    def __init__(
        self, base_url: str, token: str, timeout: float = 10.0, *, http: httpx.Client | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """`verify` is the trust for https URLs (see `hotspare.tls.client_context`)."""
        self._owns_http = http is None
        self._http = http or httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, verify=verify
        )
        self._http.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def for_peer(cls, peers: PeerTls, address: str, token: str, timeout: float) -> NodeClient:
        """A client to another node of the site, by its site.toml `address`."""
        return cls(peers.url(address), token, timeout, verify=peers.verify)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _get(self, path: str, model: type[_Model], params: dict[str, Any] | None = None) -> _Model:
        response = self._http.get(API_PREFIX + path, params=params)
        raise_for_problem(response)
        return model.model_validate(response.json())

    @staticmethod
    def _range(from_wall_us: int | None, to_wall_us: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if from_wall_us is not None:
            params["from"] = from_wall_us
        if to_wall_us is not None:
            params["to"] = to_wall_us
        return params

    def health(self) -> HealthOut:
        return self._get("/health", HealthOut)

    def list_segments(
        self,
        camera_id: str,
        from_wall_us: int | None = None,
        to_wall_us: int | None = None,
        limit: int = MAX_PAGE_ROWS,
        after: str | None = None,
    ) -> SegmentList:
        """One page; `after` = the previous page's `next` (see `iter_segments` for all of them)."""
        params = {**self._range(from_wall_us, to_wall_us), "limit": limit}
        if after is not None:
            params["after"] = after
        return self._get(f"/cameras/{camera_id}/segments", SegmentList, params)

    def list_cameras_segments(self, camera_ids: Sequence[str], from_wall_us: int,
                              to_wall_us: int) -> SegmentLists:
        """Each camera's segments of one short range in one request (`GET /segments`; at most
        MAX_LIST_CAMERAS cameras and MAX_LIST_RANGE_US). A node older than that route answers
        404 `not_found`: ask `list_segments` per camera instead."""
        params = {**self._range(from_wall_us, to_wall_us), "camera": list(camera_ids)}
        return self._get("/segments", SegmentLists, params)

    def iter_segments(
        self, camera_id: str, from_wall_us: int, to_wall_us: int, *, limit: int = MAX_PAGE_ROWS
    ) -> Iterator[SegmentOut]:
        """Every segment of [from, to), oldest first, a page and a day at a time (the API's
        limits), so a month is as many bounded requests rather than one refused one."""
        start = from_wall_us
        while start < to_wall_us:
            end = min(to_wall_us, start + MAX_SEGMENT_RANGE_US)
            after: str | None = None
            while True:
                page = self.list_segments(camera_id, start, end, limit, after)
                for segment in page.segments:
                    # a segment overlapping the window's start was given by the window before
                    if start == from_wall_us or segment.start_wall_us >= start:
                        yield segment
                if page.next is None:
                    break
                after = page.next
            start = end

    def list_runs(
        self,
        camera_id: str,
        from_wall_us: int | None = None,
        to_wall_us: int | None = None,
        limit: int = MAX_PAGE_ROWS,
        after: str | None = None,
    ) -> RunList:
        params = {**self._range(from_wall_us, to_wall_us), "limit": limit}
        if after is not None:
            params["after"] = after
        return self._get(f"/cameras/{camera_id}/runs", RunList, params)

    def timeline(
        self, camera_id: str, from_wall_us: int | None = None, to_wall_us: int | None = None
    ) -> TimelineOut:
        """One answer: at most a week, and possibly `truncated` (see `whole_timeline`)."""
        return self._get(
            f"/cameras/{camera_id}/timeline", TimelineOut, self._range(from_wall_us, to_wall_us)
        )

    def whole_timeline(self, camera_id: str, from_wall_us: int, to_wall_us: int) -> TimelineOut:
        """The timeline of any range, asked a week (or a truncated answer) at a time and joined."""
        return join_timelines(
            timeline_pages(lambda f, t: self.timeline(camera_id, f, t), from_wall_us, to_wall_us)
        )

    def get_segment(self, segment_id: int) -> SegmentOut:
        return self._get(f"/segments/{segment_id}", SegmentOut)

    def download_segment(
        self, segment_id: int, target: Path, *, expected_sha256: str | None = None
    ) -> Path:
        """Streams the stored file (`raw=1`: byte for byte, not the served form, so its hash is
        the index's) to `target`, written via a temp name, so a failure leaves no file."""
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        try:
            with self._http.stream("GET", f"{API_PREFIX}/segments/{segment_id}/file",
                                   params={"raw": "1"}) as response:
                raise_for_problem(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
            if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
                raise NodeApiError(
                    0,
                    "hash_mismatch",
                    f"segment {segment_id} downloaded with SHA-256 "
                    f"{digest.hexdigest()}, expected {expected_sha256}",
                )
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def import_segment(self, camera_id: str, meta: ImportMetaIn, path: Path) -> ImportOut:
        """Uploads one segment, streamed from disk; `duplicate` means the node already had it."""
        size = path.stat().st_size
        headers = {
            META_HEADER: meta.model_dump_json(),
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
        }
        response = self._http.put(
            f"{API_PREFIX}/cameras/{camera_id}/segments/import",
            content=_file_chunks(path),
            headers=headers,
        )
        raise_for_problem(response)
        return ImportOut.model_validate(response.json())
