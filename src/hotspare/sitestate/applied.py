"""The site configuration as stored in etcd: written by `site apply`, read by every node.

The stored form is self-contained JSON: licence and trusted-key files are inlined as text at apply
time, because a node cannot read files that live next to the operator's site.toml. Camera
passwords are sealed with the site secret (`hotspare.site_secret`) before anything is written:
etcd never holds them in clear.

In etcd the JSON is gzip-compressed (`stored_value`). At 10 000 cameras with sealed passwords the
JSON is 2.56 MB (~1 MB without passwords): past etcd's `--max-request-bytes` (1.5 MiB by
default), so such a site could not be applied, and each change was sent whole to every node.
Compressed it is 0.49 MB. A value that is not gzip is read as plain JSON, as stored before. The
node's local cache stays plain JSON for an operator to read.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from hotspare.config.load import describe_validation_error
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import KeyValue
from hotspare.signing_keys import public_key_pem
from hotspare.site.allotment import Allotment, allot
from hotspare.site.load import SiteConfigError, load_site_licences, read_trusted_keys
from hotspare.site.model import SiteConfig
from hotspare.site.pool import LicenceMerge, LicencePool
from hotspare.site_secret import SITE_SECRET_FILE, SecretError, SiteSecret, is_sealed, seal_url
from hotspare.sitestate import layout


def _plain(value: Any) -> Any:
    """JSON-ready data with secrets revealed (pydantic's JSON mode would mask them)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def inline(site: SiteConfig) -> SiteConfig:
    """The same site with every licence and trusted key carried as text, not as a file path."""
    licences = []
    for ref in site.licences:
        if ref.file is not None:
            try:
                text = ref.file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # reported as refused by load_site_licences; nothing to store
            licences.append(ref.model_copy(update={"file": None, "text": text}))
        else:
            licences.append(ref)
    trusted = [
        key.model_copy(update={"file": None, "public_key": public_key_pem(found.key)})
        for key, found in zip(site.trusted_keys, read_trusted_keys(site.trusted_keys), strict=True)
    ]
    return site.model_copy(update={"licences": licences, "trusted_keys": trusted})


def _no_secret(field: str) -> SiteConfigError:
    return SiteConfigError(
        f"{field}: camera passwords are stored sealed with the site secret, and none was given; "
        f"make one with `hotspare pki site-secret DIR` ({SITE_SECRET_FILE}), give it to `site "
        "apply` (--site-secret, default: beside the site file) and to every node (beside "
        "node.toml); nothing was written")


def seal_passwords(site: SiteConfig, secret: SiteSecret | None) -> SiteConfig:
    """The same site with every camera password (and secret URL query value) sealed; raises
    SiteConfigError naming the first camera with one when there is no secret to seal it with
    (nothing is written then)."""
    servers = []
    for server in site.recording_servers:
        cameras = []
        for camera in server.cameras:
            where = f"recording_servers.{server.name}.cameras.{camera.id}"
            update: dict[str, Any] = {}
            plain = None if camera.password is None else camera.password.get_secret_value()
            if plain is not None and not is_sealed(plain):
                if secret is None:
                    raise _no_secret(f"{where}.password")
                update["password"] = SecretStr(secret.seal(camera.id, plain))
            try:
                url = seal_url(camera.id, camera.url, secret)
            except SecretError:
                raise _no_secret(f"{where}.url (its secret query parameter)") from None
            if url != camera.url:
                update["url"] = url
            cameras.append(camera.model_copy(update=update) if update else camera)
        servers.append(server.model_copy(update={"cameras": cameras}))
    return site.model_copy(update={"recording_servers": servers})


GZIP_MAGIC = b"\x1f\x8b"
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
"""The most a stored value may expand to: a corrupt or hostile value must not fill the memory."""


def encode(site: SiteConfig) -> str:
    """The site as JSON text (the node's local cache, the comparison of two sites)."""
    return json.dumps(_plain(site.model_dump(exclude_none=True)), sort_keys=True)


def stored_value(site: SiteConfig) -> bytes:
    """The value written to `config/site`: `encode` compressed (with no timestamp, so the same
    site gives the same bytes and an apply can recognise its own write). Raises SiteConfigError
    when it does not fit one etcd request (`check_fits`): every writer asks for it here."""
    value = gzip.compress(encode(site).encode("utf-8"), compresslevel=6, mtime=0)
    check_fits(value, site)
    return value


def check_fits(value: bytes, site: SiteConfig) -> None:
    """Refuse, before anything is written, a value etcd would refuse with a bare "request is too
    large" (the request adds the key and a few bytes to the value)."""
    limit = site.etcd.max_request_bytes - 4096
    if len(value) > limit:
        cameras = sum(len(server.cameras) for server in site.recording_servers)
        raise SiteConfigError(
            f"etcd.max_request_bytes: the site configuration is {len(value):,} bytes compressed "
            f"({len(site.recording_servers)} recording servers, {cameras} cameras) and one etcd "
            f"request takes at most {site.etcd.max_request_bytes:,}; start every etcd member "
            "with a larger --max-request-bytes and set etcd.max_request_bytes in the site file "
            "to the same number, or split the site; nothing was written")


def document_text(value: str | bytes, source: str = "etcd config/site") -> str | bytes:
    """The JSON text of a stored value, compressed (`stored_value`) or plain (stored before)."""
    if isinstance(value, str) or not value.startswith(GZIP_MAGIC):
        return value
    expand = zlib.decompressobj(wbits=31)
    try:
        text = expand.decompress(value, MAX_DOCUMENT_BYTES)
    except zlib.error as exc:
        raise _damaged(source, str(exc)) from exc
    if expand.unconsumed_tail:
        raise SiteConfigError(f"{source}: the stored configuration expands to more than "
                              f"{MAX_DOCUMENT_BYTES:,} bytes; refused")
    if not expand.eof:
        raise _damaged(source, "cut short")
    return text


def _damaged(source: str, why: str) -> SiteConfigError:
    return SiteConfigError(f"{source}: the stored configuration is damaged ({why}); apply the "
                           "site again with `hotspare site apply`")


def decode(value: str | bytes, source: str = "etcd config/site") -> SiteConfig:
    text = document_text(value, source)
    try:
        return SiteConfig.model_validate_json(text)
    except ValidationError as exc:
        raise SiteConfigError(describe_validation_error(source, exc)) from exc


@dataclass(frozen=True)
class AppliedSite:
    """A site as a node sees it: the configuration, the revision it was read at, its licences."""

    config: SiteConfig
    mod_revision: int
    licences: LicenceMerge

    def pool(self, now: datetime | None = None) -> LicencePool:
        return LicencePool.at(self.licences.licences, now or datetime.now(UTC))

    def allotment(self, now: datetime | None = None) -> Allotment:
        return allot(self.pool(now), (s.name for s in self.config.failover_servers))


def apply(coord: Coordinator, site: SiteConfig,
          secret: SiteSecret | None) -> tuple[int, LicenceMerge]:
    """Store the (already validated) site; returns the revision written and the licence verdicts."""
    stored = seal_passwords(inline(site), secret)
    licences = load_site_licences(stored, datetime.now(UTC))
    revision = coord.put(layout.SITE_CONFIG, stored_value(stored))
    return revision, licences


def read(coord: Coordinator, known: AppliedSite | None = None) -> AppliedSite | None:
    """The applied site, or None when no configuration was applied yet. `known`: the copy the
    caller holds; while the stored one has the same revision it is reused, and only that
    revision is read, not the value (spares re-read every 5 s: at 10 000 cameras the value is
    ~1 MB to send, and 43 ms of CPU to validate again: bench/site_scale). The licences are
    verified again either way: their validity depends on the date."""
    if known is not None and known.mod_revision:
        head = coord.get(layout.SITE_CONFIG, keys_only=True)
        if head is None:
            return None
        if head.mod_revision == known.mod_revision:
            return AppliedSite(known.config, known.mod_revision,
                               load_site_licences(known.config, datetime.now(UTC)))
    kv = coord.get(layout.SITE_CONFIG)
    if kv is None:
        return None
    return from_stored(kv, known)


def from_stored(kv: KeyValue, known: AppliedSite | None = None) -> AppliedSite:
    """The applied site from `config/site` as etcd handed it over: a read, or the watch event of
    a change, which carries the whole value already (at 10 000 cameras, re-reading it sent each
    node the ~1 MB document a second time: bench/site_scale)."""
    config = known.config if known is not None and known.mod_revision == kv.mod_revision \
        else decode(kv.value)
    return AppliedSite(config, kv.mod_revision, load_site_licences(config, datetime.now(UTC)))
