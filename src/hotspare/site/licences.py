"""Signed licence documents: issuing, verifying, and why a licence is refused.

A licence file is JSON:
`{"format": "hotspare-licence/1", "document": {...}, "signature": "<base64>"}`.
The signature covers the document's canonical JSON (keys sorted, no spaces, UTF-8), so the file may
be re-indented freely but changing any value (a count, a date, the site) breaks the signature.
The signature is checked before anything the document claims is believed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AwareDatetime, Field, ValidationError, model_validator

from hotspare.config.load import describe_validation_error
from hotspare.config.models import Identifier, StrictModel
from hotspare.signing_keys import TrustedPublicKey, key_id

FILE_FORMAT = "hotspare-licence/1"


class RefusalReason(StrEnum):
    """Why a licence is not counted; the value is stable (API, logs), `text` is for the operator."""

    UNREADABLE = "unreadable"
    MALFORMED = "malformed"
    UNKNOWN_ISSUER = "unknown_issuer"
    BAD_SIGNATURE = "bad_signature"
    OTHER_SITE = "other_site"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"

    @property
    def text(self) -> str:
        return _REFUSAL_TEXT[self]


_REFUSAL_TEXT: dict[RefusalReason, str] = {
    RefusalReason.UNREADABLE: "the file cannot be read",
    RefusalReason.MALFORMED: "the file is not a hotspare licence or is damaged",
    RefusalReason.UNKNOWN_ISSUER: "it is signed by a key this site does not trust",
    RefusalReason.BAD_SIGNATURE: "its signature does not match its content (forged or altered)",
    RefusalReason.OTHER_SITE: "it was issued for another site",
    RefusalReason.NOT_YET_VALID: "it is not valid yet",
    RefusalReason.EXPIRED: "it has expired",
}


class LicenceRefused(Exception):
    """A licence the site will not count; `reason` for code, str() for the operator."""

    def __init__(self, reason: RefusalReason, detail: str, source: str = "licence") -> None:
        self.reason = reason
        self.detail = detail
        self.source = source
        super().__init__(f"{source}: refused: {reason.text} ({detail})")


class LicenceDocument(StrictModel):
    """What the vendor grants; everything here is covered by the signature."""

    version: Literal[1] = 1
    licence_id: str = Field(min_length=1, max_length=128)
    site_id: Identifier
    issued_at: AwareDatetime
    not_before: AwareDatetime
    not_after: AwareDatetime
    failover_server_licences: int = Field(ge=0)
    failover_camera_licences: int = Field(ge=0)
    issuer_key_id: str = Field(min_length=1)

    @model_validator(mode="after")
    def _window(self) -> LicenceDocument:
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        return self

    def valid_at(self, now: datetime) -> bool:
        """Half-open window: valid from `not_before` inclusive until `not_after` exclusive."""
        return self.not_before <= now < self.not_after


@dataclass(frozen=True)
class Licence:
    """A licence whose signature, issuer and site were checked; dates are re-checked at each use."""

    document: LicenceDocument
    source: str

    @property
    def licence_id(self) -> str:
        return self.document.licence_id


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def issue_licence(
    private_key: Ed25519PrivateKey,
    site_id: str,
    failover_server_licences: int,
    failover_camera_licences: int,
    not_before: datetime,
    not_after: datetime,
    licence_id: str | None = None,
    issued_at: datetime | None = None,
) -> str:
    """Return the licence file's text; validates first, so a bad licence is never signed."""
    issued = issued_at or datetime.now(UTC)
    raw = {
        "version": 1,
        "licence_id": licence_id or f"lic-{uuid.uuid4().hex}",
        "site_id": site_id,
        "issued_at": _timestamp(issued),
        "not_before": _timestamp(not_before),
        "not_after": _timestamp(not_after),
        "failover_server_licences": failover_server_licences,
        "failover_camera_licences": failover_camera_licences,
        "issuer_key_id": key_id(private_key.public_key()),
    }
    try:
        LicenceDocument.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(describe_validation_error("licence", exc)) from None
    signature = private_key.sign(canonical_bytes(raw))
    envelope = {
        "format": FILE_FORMAT,
        "document": raw,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return json.dumps(envelope, indent=2, ensure_ascii=False) + "\n"


MAX_LICENCE_CHARS = 64 * 1024
"""Far above any real licence (a few hundred bytes); a larger text is refused unread."""


def _parse_envelope(text: str, source: str) -> tuple[dict[str, Any], bytes]:
    def malformed(detail: str) -> LicenceRefused:
        return LicenceRefused(RefusalReason.MALFORMED, detail, source)

    if len(text) > MAX_LICENCE_CHARS:
        raise malformed(f"{len(text)} characters; a licence file is at most {MAX_LICENCE_CHARS}")
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError as exc:
        raise malformed(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise malformed("nested too deeply to be a licence") from None
    if not isinstance(envelope, dict) or envelope.get("format") != FILE_FORMAT:
        raise malformed(f'expected a JSON object with "format": "{FILE_FORMAT}"')
    extra = set(envelope) - {"format", "document", "signature"}
    if extra:
        raise malformed(f"unexpected field(s): {', '.join(sorted(extra))}")
    document, signature = envelope.get("document"), envelope.get("signature")
    if not isinstance(document, dict):
        raise malformed('"document" must be a JSON object')
    if not isinstance(signature, str):
        raise malformed('"signature" must be a base64 string')
    try:
        signature_bytes = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise malformed('"signature" is not valid base64') from None
    return document, signature_bytes


def read_unverified(text: str, source: str = "licence") -> LicenceDocument:
    """Parse without checking the signature: for `licence show`, never for counting."""
    document, _ = _parse_envelope(text, source)
    try:
        return LicenceDocument.model_validate(document)
    except ValidationError as exc:
        raise LicenceRefused(
            RefusalReason.MALFORMED, describe_validation_error("document", exc), source
        ) from None


def verify_licence(
    text: str,
    trusted_keys: Iterable[TrustedPublicKey],
    site_id: str | None,
    now: datetime,
    source: str = "licence",
    allow_future: bool = False,
) -> Licence:
    """Return the licence if it may be counted at `now`, else raise LicenceRefused.

    Order matters: shape, then issuer, then signature, and only then the claims (site, dates),
    so a forged file is reported as forged rather than as whatever it pretends to be.
    `site_id=None` skips the site check (a vendor checking a file before sending it).
    `allow_future=True` accepts a licence that is not valid yet (a renewal installed early); it is
    still only counted from its `not_before` on (see LicencePool.at).
    """
    document_raw, signature = _parse_envelope(text, source)
    issuer = document_raw.get("issuer_key_id")
    if not isinstance(issuer, str):
        raise LicenceRefused(RefusalReason.MALFORMED, "document has no issuer_key_id", source)
    keys = {key.key_id: key for key in trusted_keys}
    trusted = keys.get(issuer)
    if trusted is None:
        known = ", ".join(sorted(keys)) or "none configured"
        raise LicenceRefused(
            RefusalReason.UNKNOWN_ISSUER, f"signed by {issuer}; trusted keys: {known}", source
        )
    try:
        trusted.key.verify(signature, canonical_bytes(document_raw))
    except InvalidSignature:
        raise LicenceRefused(
            RefusalReason.BAD_SIGNATURE,
            f"the signature is not {issuer}'s signature of this content",
            source,
        ) from None
    try:
        document = LicenceDocument.model_validate(document_raw)
    except ValidationError as exc:
        raise LicenceRefused(
            RefusalReason.MALFORMED, describe_validation_error("document", exc), source
        ) from None
    if site_id is not None and document.site_id != site_id:
        raise LicenceRefused(
            RefusalReason.OTHER_SITE,
            f"issued for site {document.site_id!r}, this site is {site_id!r}",
            source,
        )
    if not (allow_future and now < document.not_before):
        check_dates(document, now, source)
    return Licence(document=document, source=source)


def check_dates(document: LicenceDocument, now: datetime, source: str = "licence") -> None:
    if now < document.not_before:
        raise LicenceRefused(
            RefusalReason.NOT_YET_VALID, f"valid from {_timestamp(document.not_before)}", source
        )
    if now >= document.not_after:
        raise LicenceRefused(
            RefusalReason.EXPIRED, f"expired at {_timestamp(document.not_after)}", source
        )


def write_licence_file(path: Path, text: str) -> None:
    """Write beside the target and rename, so a crash never leaves half a licence behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def validity_window(days: float, start: datetime | None = None) -> tuple[datetime, datetime]:
    begin = (start or datetime.now(UTC)).replace(microsecond=0)
    return begin, begin + timedelta(days=days)
