"""The site's licence pool: what its valid licences add up to at a given moment.

Several licences add up (a site buys more cameras later without re-issuing the first licence).
The same licence counted twice would inflate the pool, so licences are keyed by licence id.
A refused offer never removes a licence the site already holds: operators replace licences by
adding new ones, and a bad file must not unprotect a working site.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from hotspare.signing_keys import TrustedPublicKey
from hotspare.site.licences import Licence, LicenceRefused, verify_licence


@dataclass(frozen=True)
class LicencePool:
    failover_server_licences: int = 0
    failover_camera_licences: int = 0
    licence_ids: tuple[str, ...] = ()

    @classmethod
    def at(cls, licences: Iterable[Licence], now: datetime) -> LicencePool:
        """Sum of the licences valid at `now` (each licence id once); expired ones drop out."""
        counted: dict[str, Licence] = {}
        for licence in licences:
            if licence.document.valid_at(now):
                counted.setdefault(licence.licence_id, licence)
        return cls(
            failover_server_licences=sum(
                lic.document.failover_server_licences for lic in counted.values()
            ),
            failover_camera_licences=sum(
                lic.document.failover_camera_licences for lic in counted.values()
            ),
            licence_ids=tuple(sorted(counted)),
        )


@dataclass(frozen=True)
class OfferedLicence:
    source: str
    text: str


@dataclass(frozen=True)
class LicenceMerge:
    licences: tuple[Licence, ...]
    refused: tuple[LicenceRefused, ...]
    added: tuple[str, ...]


def merge_licences(
    held: Sequence[Licence],
    offered: Iterable[OfferedLicence],
    trusted_keys: Sequence[TrustedPublicKey],
    site_id: str,
    now: datetime,
) -> LicenceMerge:
    """Add the offered licences that verify; keep every held one that has not expired.

    A licence that is not valid yet is accepted and held (renewals are installed before the old
    licence runs out) but the pool counts it only from its `not_before`.

    Held licences were verified when they were accepted; only their dates are re-checked here
    (trusted keys may be rotated later without invalidating licences already accepted).
    """
    kept: dict[str, Licence] = {
        licence.licence_id: licence for licence in held if now < licence.document.not_after
    }
    refused: list[LicenceRefused] = []
    added: list[str] = []
    for offer in offered:
        try:
            licence = verify_licence(
                offer.text, trusted_keys, site_id, now, offer.source, allow_future=True
            )
        except LicenceRefused as refusal:
            refused.append(refusal)
            continue
        if licence.licence_id not in kept:
            kept[licence.licence_id] = licence
            added.append(licence.licence_id)
    return LicenceMerge(licences=tuple(kept.values()), refused=tuple(refused), added=tuple(added))
