"""Export jobs on the node that serves the site API: started by a request, run in a thread,
polled for progress, their clip and manifest fetched when done.

Jobs live in memory and their files under the node's data directory; a restart forgets them (the
node empties the folder at start, `clear`), since a clip can always be exported again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotspare.export.build import (
    ExportFailed,
    ExportRequest,
    FetchFailed,
    Progress,
    Source,
    build_export,
)

log = logging.getLogger("hotspare.export")

CLIP_NAME = "clip.mp4"
MANIFEST_NAME = "manifest.json"
MAX_RUNNING = 2
KEEP_FINISHED = 10


class TooBusy(Exception):
    """As many exports as allowed are running."""


@dataclass
class Job:
    job_id: str
    request: ExportRequest
    folder: Path
    state: str = "running"  # running, done, failed
    error: str | None = None
    detail: str | None = None
    progress: Progress = field(default_factory=Progress)

    def view(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "camera": self.request.camera,
                "from_wall_us": self.request.from_us, "to_wall_us": self.request.to_us,
                "state": self.state, "error": self.error, "detail": self.detail,
                **self.progress.view()}

    @property
    def clip(self) -> Path:
        return self.folder / CLIP_NAME

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST_NAME


class ExportJobs:
    def __init__(self, folder: Path, key: Callable[[], Ed25519PrivateKey],
                 source: Callable[[], Source]) -> None:
        """`key` and `source` are asked per job: the key file is read when used (a key added
        later works without a restart), and each job gets its own HTTP connections."""
        self._folder = folder
        self._key = key
        self._source = source
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def clear(self) -> None:
        """Remove what an earlier run of the node left: its jobs are forgotten."""
        shutil.rmtree(self._folder, ignore_errors=True)

    def start(self, request: ExportRequest) -> Job:
        key = self._key()  # before the thread: a missing key is the caller's error, now
        with self._lock:
            if sum(j.state == "running" for j in self._jobs.values()) >= MAX_RUNNING:
                raise TooBusy(f"{MAX_RUNNING} exports are running on this node; wait for one "
                              "to finish")
            self._prune()
            job_id = uuid.uuid4().hex
            job = Job(job_id, request, self._folder / job_id)
            job.folder.mkdir(parents=True)
            self._jobs[job_id] = job
        threading.Thread(target=self._run, args=(job, key), name=f"export-{job_id[:8]}",
                         daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for job in finished[:max(0, len(finished) - KEEP_FINISHED + 1)]:
            shutil.rmtree(job.folder, ignore_errors=True)
            del self._jobs[job.job_id]

    def _run(self, job: Job, key: Ed25519PrivateKey) -> None:
        partial_clip = job.folder / (CLIP_NAME + ".part")
        source: Source | None = None
        try:
            source = self._source()
            manifest = build_export(job.request, source, key, partial_clip, job.progress)
            partial_manifest = job.folder / (MANIFEST_NAME + ".part")
            partial_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                        encoding="utf-8")
            os.replace(partial_clip, job.clip)
            os.replace(partial_manifest, job.manifest)
            job.state = "done"
            log.info("export %s of camera %s done: %d frames in %d pieces, %d gap(s)",
                     job.job_id, job.request.camera, manifest["clip"]["frame_count"],
                     len(manifest["pieces"]), len(manifest["gaps"]))
        except ExportFailed as exc:
            job.error, job.detail, job.state = exc.error, str(exc), "failed"
        except FetchFailed as exc:
            job.error, job.detail, job.state = "source_unreachable", str(exc), "failed"
        except Exception as exc:  # a thread must say why it stopped, not vanish
            log.exception("export %s of camera %s failed", job.job_id, job.request.camera)
            job.error, job.detail, job.state = "internal_error", f"{type(exc).__name__}: {exc}", \
                "failed"
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
            partial_clip.unlink(missing_ok=True)
        if job.state == "failed":
            log.warning("export %s of camera %s failed: %s", job.job_id, job.request.camera,
                        job.detail)
