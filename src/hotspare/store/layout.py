"""Where files live in a store, and the durable-write primitives every writer in it uses.

Ids become path components, so anything that is not a plain identifier is refused here, once, before
a path is ever built from it: a camera called `../etc` must never reach the filesystem.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hotspare.config.models import is_identifier

SEGMENTS_DIR = "segments"
QUARANTINE_DIR = "quarantine"
INCOMING_DIR = "incoming"  # import staging; anything here is never referenced by a row
INDEX_NAME = "index.sqlite3"
TEMP_SUFFIX = ".tmp"
_SEQ_RE = re.compile(r"^(\d{6,})\.mp4$")
_HASH_CHUNK = 1 << 20


class InvalidId(ValueError):
    """An id that could escape its directory or break a URL; the message names which one."""


def check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not is_identifier(value):
        raise InvalidId(f"{kind} {value!r} is not a valid id "
                        "(lower-case letters, digits, '-', '_')")
    return value


def check_seq(seq: int) -> int:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or seq > 999_999_999:
        raise InvalidId(f"seq {seq!r} must be an integer between 0 and 999999999")
    return seq


def segment_relpath(camera_id: str, run_id: str, seq: int) -> str:
    """'/'-separated path under the store root, the same on every OS (the index stores it)."""
    check_id("camera_id", camera_id)
    check_id("run_id", run_id)
    check_seq(seq)
    return f"{SEGMENTS_DIR}/{camera_id}/{run_id}/{seq:06d}.mp4"


@dataclass(frozen=True)
class SegmentKey:
    camera_id: str
    run_id: str
    seq: int


def parse_relpath(relpath: str) -> SegmentKey | None:
    """The ids a segment path encodes, or None if the path is not one of ours."""
    parts = PurePosixPath(relpath).parts
    if len(parts) != 4 or parts[0] != SEGMENTS_DIR:
        return None
    _, camera_id, run_id, name = parts
    m = _SEQ_RE.match(name)
    if not m or not is_identifier(camera_id) or not is_identifier(run_id):
        return None
    return SegmentKey(camera_id, run_id, int(m.group(1)))


def to_path(root: Path, relpath: str) -> Path:
    return root.joinpath(*PurePosixPath(relpath).parts)


def to_relpath(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def fsync_file(path: Path) -> None:
    # Opening read-only is enough for fsync on Linux; Windows needs a writable handle for
    # FlushFileBuffers.
    flags = os.O_RDONLY if sys.platform != "win32" else os.O_RDWR
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new or renamed file) durable.

    Windows cannot open a directory for fsync; NTFS journals metadata itself, so we skip it there.
    """
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(root: Path, path: Path) -> None:
    """mkdir -p below `root`, fsyncing each parent whose entries changed."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p == root or p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)



def move_to_quarantine(root: Path, relpath: str) -> Path:
    """Move a segment file out of the timeline without deleting it: to
    `quarantine/<camera>/<run>/<seq>.mp4`, with `.~N` added when that name is taken. Durable
    (both directories fsynced), so a crash cannot leave the file in neither place."""
    src = to_path(root, relpath)
    rel_inside = relpath.split("/", 1)[1] if "/" in relpath else relpath
    dest = to_path(root / QUARANTINE_DIR, rel_inside)
    make_dirs_durable(root, dest.parent)
    n = 0
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{dest.name.split('.~')[0]}.~{n}")
    os.replace(src, dest)
    fsync_dir(dest.parent)
    fsync_dir(src.parent)
    return dest

def sha256_file(path: Path, limit: int | None = None) -> str:
    h = hashlib.sha256()
    remaining = limit
    with path.open("rb") as f:
        while True:
            n = _HASH_CHUNK if remaining is None else min(_HASH_CHUNK, remaining)
            if n == 0:
                break
            chunk = f.read(n)
            if not chunk:
                break
            h.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return h.hexdigest()
