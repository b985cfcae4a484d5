"""Checking an exported clip against its manifest: signature, clip hash, and every frame.

Each check names what failed, so an examiner can tell a changed manifest (signature) from a
changed clip (hash) from a clip that was rebuilt to match a forged hash (frames).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hotspare.export.clip import ClipError, Frame, clip_frames
from hotspare.export.manifest import (
    ManifestError,
    check_signature,
    decode_runs,
    frame_starts,
    ticks_to_us,
)


class VerifyFailed(Exception):
    """The clip or manifest does not check out; the message says which check and why."""


def load_manifest(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VerifyFailed(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerifyFailed(f"{path}: not a JSON manifest ({exc})") from None
    if not isinstance(document, dict):
        raise VerifyFailed(f"{path}: not a manifest (a JSON object is expected)")
    return document


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise VerifyFailed(f"{path}: cannot read the clip ({exc.strerror or exc})") from None
    return digest.hexdigest()


def check_frames(manifest: dict[str, Any], frames: list[Frame]) -> None:
    """The clip's packets, in decode order, are exactly the manifest's pieces: each piece's count,
    each frame's presentation time, and wall times consistent with the frame spans."""
    pieces = manifest.get("pieces")
    if not isinstance(pieces, list) or not pieces:
        raise VerifyFailed("frames: the manifest lists no pieces")
    expected_total = sum(int(p["frame_count"]) for p in pieces)
    if len(frames) != expected_total:
        raise VerifyFailed(f"frames: the clip holds {len(frames)} frames, the manifest lists "
                           f"{expected_total}")
    at = 0
    for number, piece in enumerate(pieces):
        what = f"frames: piece {number} (recorded by {piece.get('recorded_by')})"
        try:
            durations = decode_runs(piece["frame_durations"])
        except ManifestError as exc:
            raise VerifyFailed(f"{what}: {exc}") from None
        count = int(piece["frame_count"])
        if len(durations) != count:
            raise VerifyFailed(f"{what}: {len(durations)} frame spans for {count} frames")
        expected = frame_starts(int(piece["clip_first_pts"]), durations)
        got = sorted(f.pts for f in frames[at:at + count])
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            if want != have:
                raise VerifyFailed(f"{what}: frame {index} is at clip time {have} (1/90000 s), "
                                   f"the manifest says {want}")
        last_wall = int(piece["first_frame_wall_us"]) + ticks_to_us(sum(durations[:-1]))
        if last_wall != int(piece["last_frame_wall_us"]):
            raise VerifyFailed(f"{what}: last frame wall time {piece['last_frame_wall_us']} does "
                               f"not follow from the first and the frame spans ({last_wall})")
        at += count


def verify(clip: Path, manifest_path: Path, key: Ed25519PublicKey) -> dict[str, Any]:
    """Raise VerifyFailed naming the first check that fails; return the manifest if all pass."""
    manifest = load_manifest(manifest_path)
    try:
        check_signature(manifest, key)
    except ManifestError as exc:
        raise VerifyFailed(f"signature: {exc}") from None
    clip_info = manifest.get("clip") or {}
    actual = file_sha256(clip)
    if actual != clip_info.get("sha256"):
        raise VerifyFailed(f"clip hash: {clip} has SHA-256 {actual}, the manifest says "
                           f"{clip_info.get('sha256')}: the clip is not the one exported")
    try:
        frames = clip_frames(clip)
    except ClipError as exc:
        raise VerifyFailed(f"frames: {exc}") from None
    try:
        check_frames(manifest, frames)
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyFailed(f"frames: the manifest's pieces are malformed ({exc!r})") from None
    return manifest
