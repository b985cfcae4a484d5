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
from typing import BinaryIO

import anyio.to_thread
from starlette.requests import ClientDisconnect

from hotspare.api.problems import ApiError


@dataclass(frozen=True)
class ReceivedFile:
    """The upload on disk: `sha256` was computed over exactly these bytes as they arrived, and
    the file's data was fsynced; the importer trusts both instead of redoing them."""

    path: Path
    size: int
    sha256: str


FLUSH_BYTES = 1 << 20
"""Body bytes gathered on the event loop before one worker-thread call writes and hashes them.

Hashing (~0.6 ms per MB) and writing on the event loop held it, and the GIL, while other uploads
waited; hashlib and file writes release the GIL, so in a worker thread they run beside the loop.
One call per MiB (the spare sends 1 MiB chunks) keeps thread hops few and memory per upload
bounded."""


def _write_and_hash(out: BinaryIO, digest: hashlib._Hash, parts: list[bytes], sync: bool) -> None:
    for part in parts:
        out.write(part)
        digest.update(part)
    if sync:
        out.flush()
        os.fsync(out.fileno())


async def receive_to_file(
    chunks: AsyncIterator[bytes], target: Path, *, declared_bytes: int, max_bytes: int
) -> ReceivedFile:
    """Write the body to `target`, refusing as soon as it is longer than declared or allowed.

    The returned hash covers exactly the bytes written, and the file is fsynced before this
    returns, so the importer need not hash or sync it again."""
    digest = hashlib.sha256()
    size = 0
    parts: list[bytes] = []
    buffered = 0
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
                parts.append(chunk)
                buffered += len(chunk)
                if buffered >= FLUSH_BYTES:
                    await anyio.to_thread.run_sync(_write_and_hash, out, digest, parts, False)
                    parts, buffered = [], 0
            if size != declared_bytes:
                raise ApiError(
                    400,
                    "truncated",
                    f"received {size} bytes but the metadata declares {declared_bytes}; "
                    "the upload was cut short: retry it",
                )
            # The rest, then fsync, in a worker thread: an fsync on the event loop would stall
            # every other request, including the next import a pipelining spare already sends.
            await anyio.to_thread.run_sync(_write_and_hash, out, digest, parts, True)
    except ClientDisconnect:
        target.unlink(missing_ok=True)
        raise ApiError(
            400, "truncated", "the client went away before the whole body arrived; retry the upload"
        ) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return ReceivedFile(target, size, digest.hexdigest())
