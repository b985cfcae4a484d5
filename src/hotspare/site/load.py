"""Reading site.toml and the licence and key files it names.

Errors use the same field-path wording as a node's own configuration (`hotspare.config.load`), so
an operator sees one style of message whichever file is wrong.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from hotspare.config.load import ConfigError, describe_validation_error, read_config_text
from hotspare.signing_keys import (
    KeyFileError,
    TrustedPublicKey,
    parse_public_key,
    read_public_key,
    trust_roots,
)
from hotspare.site.licences import Licence, LicenceRefused, RefusalReason
from hotspare.site.model import LicenceRef, SiteConfig, TrustedKey
from hotspare.site.pool import LicenceMerge, OfferedLicence, merge_licences


class SiteConfigError(ConfigError):
    """A site configuration that is refused as a whole; nothing of it is applied."""


def parse_site_config(text: str, source: str) -> SiteConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return SiteConfig.model_validate(raw)
    except ValidationError as exc:
        message = describe_validation_error(source, exc, docs="docs/site-config.md")
        raise SiteConfigError(message) from exc


def load_site_config(path: Path) -> SiteConfig:
    """Parse and validate; relative licence and key paths resolve against the file's folder."""
    try:
        text = read_config_text(path, "site configuration", "site.toml")
    except ConfigError as exc:
        raise SiteConfigError(str(exc)) from exc
    config = parse_site_config(text, str(path))
    base = path.parent

    def absolute(value: Path | None) -> Path | None:
        return value if value is None or value.is_absolute() else (base / value).resolve()

    licences = [ref.model_copy(update={"file": absolute(ref.file)}) for ref in config.licences]
    keys = [key.model_copy(update={"file": absolute(key.file)}) for key in config.trusted_keys]
    return config.model_copy(update={"licences": licences, "trusted_keys": keys})


def read_trusted_keys(keys: Sequence[TrustedKey]) -> list[TrustedPublicKey]:
    """A bad trusted key is a configuration error, not a licence refusal: the operator wrote it."""
    result: list[TrustedPublicKey] = []
    for index, key in enumerate(keys):
        try:
            if key.file is not None:
                result.append(read_public_key(key.file))
            else:
                assert key.public_key is not None
                result.append(parse_public_key(key.public_key, f"trusted_keys.{index}.public_key"))
        except KeyFileError as exc:
            where = f"trusted_keys.{index}.file: " if key.file is not None else ""
            raise SiteConfigError(f"{where}{exc}") from None
    return result


def _offer(index: int, ref: LicenceRef) -> OfferedLicence | LicenceRefused:
    if ref.text is not None:
        return OfferedLicence(source=f"licences.{index}.text", text=ref.text)
    assert ref.file is not None
    try:
        return OfferedLicence(source=str(ref.file), text=ref.file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return LicenceRefused(RefusalReason.UNREADABLE, detail, str(ref.file))


def load_site_licences(
    config: SiteConfig, now: datetime, held: Sequence[Licence] = ()
) -> LicenceMerge:
    """Verify every licence the configuration names, on top of those the site already holds,
    against this installation's trust roots (`signing_keys.trust_roots`): the document's own
    `trusted_keys` are not trusted, since whoever writes the document writes its licences."""
    trusted = list(trust_roots())
    offers = [_offer(index, ref) for index, ref in enumerate(config.licences)]
    merge = merge_licences(
        held, [o for o in offers if isinstance(o, OfferedLicence)], trusted, config.site.id, now
    )
    unreadable = tuple(o for o in offers if isinstance(o, LicenceRefused))
    return LicenceMerge(
        licences=merge.licences, refused=unreadable + merge.refused, added=merge.added
    )
