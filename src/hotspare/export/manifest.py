"""The export manifest: its canonical form, its Ed25519 signature, and frame times in brief.

The signature covers the canonical JSON of every field but `signature` (keys sorted, no white
space, UTF-8), the same rule as licences (`hotspare.site.licences`), so the file may be
re-indented but no value may change. Frame times are stored run-length encoded (`[duration, count]`
pairs in 90 kHz ticks, presentation order) so an hour of video stays a small file while each
frame's time can still be recomputed exactly.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hotspare.signing_keys import key_id

FORMAT = "hotspare-export/1"
CLIP_TICKS_PER_SECOND = 90_000
SIGNATURE_FIELD = "signature"


class ManifestError(Exception):
    """A manifest that is not what it claims to be; the message names the part that failed."""


def canonical_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _signed_part(manifest: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in manifest.items() if k != SIGNATURE_FIELD})


def sign(manifest: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of `manifest` naming the signing key and carrying the signature of the rest."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    body["signing_key_id"] = key_id(private_key.public_key())
    signature = private_key.sign(_signed_part(body))
    return {**body, SIGNATURE_FIELD: base64.b64encode(signature).decode("ascii")}


def check_signature(manifest: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """Raise ManifestError unless `manifest` was signed by `public_key` and not changed since."""
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"not a hotspare export manifest (format {manifest.get('format')!r}, "
                            f"expected {FORMAT!r})")
    encoded = manifest.get(SIGNATURE_FIELD)
    if not isinstance(encoded, str):
        raise ManifestError("the manifest has no signature")
    trusted = key_id(public_key)
    if manifest.get("signing_key_id") != trusted:
        raise ManifestError(f"the manifest names signing key {manifest.get('signing_key_id')!r}, "
                            f"but the key given is {trusted}: it was signed by another key")
    try:
        signature = base64.b64decode(encoded, validate=True)
        public_key.verify(signature, _signed_part(manifest))
    except (binascii.Error, ValueError, InvalidSignature):
        raise ManifestError("the signature does not match the manifest's content: the manifest "
                            "was altered after signing, or signed by another key") from None


def encode_runs(durations: Iterable[int]) -> list[list[int]]:
    """[40, 40, 40, 80] -> [[40, 3], [80, 1]]."""
    runs: list[list[int]] = []
    for duration in durations:
        if runs and runs[-1][0] == duration:
            runs[-1][1] += 1
        else:
            runs.append([duration, 1])
    return runs


def decode_runs(runs: Sequence[Sequence[int]]) -> list[int]:
    out: list[int] = []
    for pair in runs:
        if len(pair) != 2 or pair[1] < 1:
            raise ManifestError(f"frame duration run {list(pair)!r} is not [ticks, count >= 1]")
        out.extend([int(pair[0])] * int(pair[1]))
    return out


def frame_starts(first: int, durations: Sequence[int]) -> list[int]:
    """Start of each frame: `first`, then each after the one before it."""
    starts: list[int] = []
    at = first
    for duration in durations:
        starts.append(at)
        at += duration
    return starts


def ticks_to_us(ticks: int) -> int:
    return (ticks * 1_000_000) // CLIP_TICKS_PER_SECOND
