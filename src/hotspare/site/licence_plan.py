"""Which licences `hotspare site apply` would store, and what it must refuse.

Pure (no etcd): the caller passes the site it is about to apply and the licence texts the site
holds now (from the stored configuration). The rules (docs/licences.md, "Applying"):

- Every licence the file names must verify (signature, issuer, site, dates; a licence that is not
  valid yet is accepted). If one does not, the apply is refused as a whole and nothing is written,
  unless the operator explicitly asks to drop the refused ones.
- Licences the site already holds and the file no longer names are carried over until they
  expire (`merge_licences` semantics: a file can add licences, never silently remove one).
- The stored form is re-verified by every node against the stored trusted keys, so a held licence
  whose issuer the new file no longer trusts would stop counting: that is reported as a problem
  too (the operator keeps the old key listed until its licences expire, or drops them knowingly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hotspare.signing_keys import TrustedPublicKey
from hotspare.site.licences import (
    LicenceRefused,
    RefusalReason,
    read_unverified,
    verify_licence,
)
from hotspare.site.model import LicenceRef, SiteConfig


@dataclass(frozen=True)
class LicenceProblem:
    """A licence the apply cannot take as it stands; `held` when the site holds it today."""

    source: str
    refusal: LicenceRefused
    held: bool = False
    licence_id: str | None = None

    def line(self) -> str:
        what = f"held licence {self.licence_id}" if self.held else self.source
        return f"REFUSED [{self.refusal.reason.value}] {what}: {self.refusal.reason.text} " \
               f"({self.refusal.detail})"


@dataclass(frozen=True)
class LicencePlan:
    accepted: tuple[tuple[int, str], ...]
    """(index in the file's [[licences]], licence id) of each licence in the file that verifies."""
    carried: tuple[tuple[str, str], ...]
    """(licence id, text) of held licences the file no longer names, kept until they expire."""
    problems: tuple[LicenceProblem, ...]
    expired_held: tuple[str, ...]
    """Held licences that have expired: they simply stop being stored (they count for nothing)."""

    @property
    def refused(self) -> bool:
        return bool(self.problems)

    def licence_refs(self, texts: Sequence[str | None]) -> list[LicenceRef]:
        """What to store: the accepted entries of the file (as text), then the carried ones."""
        refs = [
            LicenceRef(text=texts[index]) for index, _ in self.accepted if texts[index] is not None
        ]
        refs += [LicenceRef(text=text) for _, text in self.carried]
        return refs


def licence_text(ref: LicenceRef) -> str | LicenceRefused:
    if ref.text is not None:
        return ref.text
    assert ref.file is not None
    try:
        return ref.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return LicenceRefused(RefusalReason.UNREADABLE, detail, str(ref.file))


def _source(index: int, ref: LicenceRef) -> str:
    return str(ref.file) if ref.file is not None else f"licences.{index}.text"


def plan_licences(
    site: SiteConfig,
    trusted: Sequence[TrustedPublicKey],
    held_texts: Sequence[str],
    held_trusted: Sequence[TrustedPublicKey],
    now: datetime,
) -> tuple[LicencePlan, list[str | None]]:
    """Check the file's licences and the held ones; returns the plan and each entry's text.

    `held_texts` are the stored configuration's licence texts; those that verify under the stored
    trusted keys (`held_trusted`) are what the site holds now.
    """
    texts: list[str | None] = []
    accepted: list[tuple[int, str]] = []
    problems: list[LicenceProblem] = []
    for index, ref in enumerate(site.licences):
        source = _source(index, ref)
        text = licence_text(ref)
        if isinstance(text, LicenceRefused):
            texts.append(None)
            problems.append(LicenceProblem(source, text))
            continue
        texts.append(text)
        try:
            licence = verify_licence(text, trusted, site.site.id, now, source, allow_future=True)
        except LicenceRefused as refusal:
            problems.append(LicenceProblem(source, refusal, licence_id=_id_of(text, source)))
            continue
        accepted.append((index, licence.licence_id))
    # A refused entry claiming a held licence's id does not replace it: the held one is kept.
    named = {licence_id for _, licence_id in accepted}
    carried: list[tuple[str, str]] = []
    expired: list[str] = []
    for index, text in enumerate(held_texts):
        source = f"held licence {index}"
        try:
            held = verify_licence(text, held_trusted, site.site.id, now, source, allow_future=True)
        except LicenceRefused as refusal:
            if refusal.reason is RefusalReason.EXPIRED:
                expired.append(_id_of(text, source) or source)
            continue  # not counted today either: nothing to keep
        if held.licence_id in named or held.licence_id in dict(carried):
            continue
        try:
            verify_licence(text, trusted, site.site.id, now, source, allow_future=True)
        except LicenceRefused as refusal:
            problems.append(LicenceProblem(source, refusal, held=True, licence_id=held.licence_id))
            continue
        carried.append((held.licence_id, text))
    return (
        LicencePlan(tuple(accepted), tuple(carried), tuple(problems), tuple(expired)),
        texts,
    )


def _id_of(text: str, source: str) -> str | None:
    """The id a refused licence claims (only to match it with a held one; never trusted)."""
    try:
        return read_unverified(text, source).licence_id
    except LicenceRefused:
        return None
