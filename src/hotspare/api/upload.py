"""Receiving an upload's bytes onto the store's own disk, checked before the store sees them.

The body is streamed, never held in memory (segments can be large and several peers may re-insert
at once), into a temp file inside the store's folder so the store can move it into place on the
same filesystem. Whatever goes wrong, the temp file is removed: a refused upload leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import ClientDisconnect

from hotspare.api.problems import ApiError


@dataclass(frozen=True)
class ReceivedFile:
    path: Path
    size: int
    sha256: str


async def receive_to_file(
    chunks: AsyncIterator[bytes], target: Path, *, declared_bytes: int, max_bytes: int
) -> ReceivedFile:
    """Write the body to `target`, refusing as soon as it is longer than declared or allowed."""
    digest = hashlib.sha256()
    size = 0
    try:
        with target.open("xb") as out:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(
                        413,
                        "too_large",
                        f"the body exceeds this node's import limit of {max_bytes} bytes; "
                        "raise api import limit on the receiving node or send smaller segments",
                    )
                if size > declared_bytes:
                    raise ApiError(
                        400,
                        "length_mismatch",
                        f"the body is longer than the declared {declared_bytes} bytes; "
                        "the metadata does not describe this file: re-read it and retry",
                    )
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
    except ClientDisconnect:
        target.unlink(missing_ok=True)
        raise ApiError(
            400, "truncated", "the client went away before the whole body arrived; retry the upload"
        ) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if size != declared_bytes:
        target.unlink(missing_ok=True)
        raise ApiError(
            400,
            "truncated",
            f"received {size} bytes but the metadata declares {declared_bytes}; "
            "the upload was cut short: retry it",
        )
    return ReceivedFile(target, size, digest.hexdigest())
