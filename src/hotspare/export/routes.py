"""Site routes of the evidence export: start one, poll its progress, fetch the clip and manifest.

An export may take minutes for a long range, so it is a job: `POST` answers at once with the
job, `GET` on the job reports pieces and bytes done (for a progress bar), and the clip and its
manifest are fetched when `state` is `done`. Bounded by the playlist's read limit (24 h).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from hotspare.api.params import CameraParam, FromParam, ToParam
from hotspare.api.problems import CAMERA_RESPONSES, COMMON_RESPONSES, ApiError
from hotspare.api.site_routes import SiteApi, _camera_server, _range
from hotspare.export.build import ExportRequest
from hotspare.export.jobs import ExportJobs, Job, TooBusy
from hotspare.signing_keys import KeyFileError, read_private_key
from hotspare.wire import MAX_SEGMENT_RANGE_US, Problem

JobParam = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="the export job's id")]
_UNKNOWN_JOB: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem,
          "description": "`unknown_export`: no such job on this node (jobs are kept in memory)"},
}
_UNFINISHED: dict[int | str, dict[str, Any]] = {
    **_UNKNOWN_JOB,
    409: {"model": Problem,
          "description": "`export_running` or `export_failed`: the job is not done"},
}


def signing_key(path: FilePath | None) -> Callable[[], Ed25519PrivateKey]:
    def load() -> Ed25519PrivateKey:
        if path is None:
            raise ApiError(503, "export_not_configured",
                           "this node has no export signing key: create one with `hotspare "
                           "export keygen DIR` and set [site] export_signing_key_file in its "
                           "node.toml (the same key on every node that may serve the site API)")
        try:
            return read_private_key(path)
        except KeyFileError as exc:
            raise ApiError(503, "export_key_unusable", f"the export signing key is unusable: "
                           f"{exc}") from None
    return load


def export_router(api: SiteApi, jobs: ExportJobs, node_name: str) -> APIRouter:
    router = APIRouter(tags=["export"], responses=COMMON_RESPONSES)

    def job_or_404(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise ApiError(404, "unknown_export", f"no export {job_id} on this node (jobs are "
                           "kept in memory: a restart or newer exports forget it); export again")
        return job

    def finished(job_id: str) -> Job:
        job = job_or_404(job_id)
        if job.state == "failed":
            raise ApiError(409, "export_failed", f"export {job_id} failed: {job.detail}")
        if job.state != "done":
            raise ApiError(409, "export_running", f"export {job_id} is still running; poll "
                           f"GET /api/v1/site/exports/{job_id} until `state` is `done`")
        return job

    def download(job: Job, which: str) -> FileResponse:
        name = f"{job.request.camera}-{job.job_id[:8]}"
        if which == "clip":
            return FileResponse(job.clip, media_type="video/mp4", filename=f"{name}.mp4")
        return FileResponse(job.manifest, media_type="application/json",
                            filename=f"{name}.manifest.json")

    @router.post("/site/cameras/{camera}/exports", status_code=202,
                 responses={**CAMERA_RESPONSES, 429: {"description": "too many exports running"},
                            503: {"description": "no export signing key, or etcd unavailable"}},
                 summary="Start an evidence export of a camera's range (clip + signed manifest)",
                 description=f"At most {MAX_SEGMENT_RANGE_US // 3_600_000_000} h "
                 "(`400 range_too_large`); `from` and `to` are required. Poll the job's status.")
    def start(camera: CameraParam, from_: FromParam = None, to: ToParam = None) -> dict[str, Any]:
        if from_ is None or to is None:
            raise ApiError(400, "missing_range", "give both `from` and `to`: an export names "
                           "exactly the range it covers")
        applied = api.applied()
        _camera_server(applied, camera)
        from_us, to_us = _range(api, from_, to, MAX_SEGMENT_RANGE_US, "an export")
        if from_us == to_us:
            raise ApiError(400, "bad_range", "`from` equals `to`: the range is empty")
        request = ExportRequest(applied.config.site.id, camera, from_us, to_us, node_name)
        try:
            job = jobs.start(request)
        except TooBusy as exc:
            raise ApiError(429, "too_many_exports", str(exc)) from None
        return job.view()

    @router.get("/site/exports/{job_id}", summary="An export's state and progress",
                responses=_UNKNOWN_JOB)
    def status(job_id: JobParam) -> dict[str, Any]:
        return job_or_404(job_id).view()

    @router.get("/site/exports/{job_id}/clip.mp4", response_class=FileResponse,
                responses=_UNFINISHED,
                summary="The exported clip (when the export is done)")
    def clip(job_id: JobParam) -> FileResponse:
        return download(finished(job_id), "clip")

    @router.get("/site/exports/{job_id}/manifest.json", response_class=FileResponse,
                responses=_UNFINISHED,
                summary="The export's signed manifest (when the export is done)")
    def manifest(job_id: JobParam) -> FileResponse:
        return download(finished(job_id), "manifest")

    return router
