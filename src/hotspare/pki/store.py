"""A site PKI kept in one folder: `ca.pem`/`ca.key`, then `<kind>/<name>.pem` and `.key`.

Private keys are created with mode 0600 in one `os.open` (never written then chmod-ed, which
would leave a moment where another user could read them), in folders made 0700. On Windows the
mode bits do nothing beyond read-only: a key there inherits its folder's ACL, so the folder must
be one only the administrators and the service account can read (docs/site-config.md, "Site PKI").

Nothing is overwritten silently: issuing a name that exists fails unless `replace` is asked for,
and a replacement is written beside the old files and renamed over them, so a crash leaves either
the old pair or the new one, never a key that does not match its certificate.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hotspare.config.models import is_identifier
from hotspare.pki.certs import (
    CertKind,
    Issued,
    common_name,
    hosts_of,
    issue,
    new_ca,
    subject_names,
)

CA_DAYS = 3650.0
LEAF_DAYS = 825.0


class PkiError(ValueError):
    """A PKI folder or file that cannot be used as asked; the message says what to do."""


@dataclass(frozen=True)
class CertFiles:
    """Where one certificate and its key are, plus the CA that signed it: what a TLS peer needs."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class CertInfo:
    path: Path
    kind: str
    name: str
    hosts: list[str]
    not_after: dt.datetime

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86400


def _make_private_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode`, failing if it exists (O_EXCL: no race with another writer)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_pair(cert_file: Path, key_file: Path, issued: Issued, replace: bool) -> None:
    if not replace:
        _write_new(key_file, issued.key_pem(), 0o600)
        _write_new(cert_file, issued.cert_pem(), 0o644)
        return
    staged = [(key_file, key_file.with_name(key_file.name + ".new"), issued.key_pem(), 0o600),
              (cert_file, cert_file.with_name(cert_file.name + ".new"), issued.cert_pem(), 0o644)]
    for _target, temp, data, mode in staged:
        temp.unlink(missing_ok=True)
        _write_new(temp, data, mode)
    for target, temp, _data, _mode in staged:
        os.replace(temp, target)


class SitePki:
    """One site's CA folder. The CA key lives here too: keep the folder on the machine (or
    removable medium) an administrator issues certificates from, not on every node."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.folder / "ca.key"

    @classmethod
    def init(cls, folder: Path, name: str = "hotspare site CA", days: float = CA_DAYS) -> SitePki:
        pki = cls(folder)
        for existing in (pki.ca_file, pki.ca_key_file):
            if existing.exists():
                raise PkiError(f"{existing} already exists; a second CA would not be trusted by "
                               "anything the first one signed. Use another folder, or remove "
                               "the old CA knowingly (docs/site-config.md, certificate renewal)")
        _make_private_dir(pki.folder)
        _write_pair(pki.ca_file, pki.ca_key_file, new_ca(name, days), replace=False)
        return pki

    def load_ca(self) -> Issued:
        if not self.ca_file.is_file() or not self.ca_key_file.is_file():
            raise PkiError(f"{self.folder} holds no site CA (ca.pem and ca.key); create one "
                           "with `hotspare pki init-ca`")
        try:
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), None)
        except (ValueError, TypeError) as exc:
            raise PkiError(f"{self.folder}: ca.pem/ca.key cannot be read as an unencrypted PEM "
                           f"certificate and key: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.ca_key_file}: not an EC key; hotspare's CA uses P-256")
        return Issued(cert, key)

    def files(self, kind: CertKind, name: str) -> CertFiles:
        if not is_identifier(name):
            raise PkiError(f"name {name!r}: use lower-case letters, digits, '-' and '_' (it "
                           "names the files and, for a node, must be the node's name)")
        folder = self.folder / kind.value
        return CertFiles(self.ca_file, folder / f"{name}.pem", folder / f"{name}.key")

    def issue(self, kind: CertKind, name: str, hosts: Sequence[str] = (),
              days: float = LEAF_DAYS, *, replace: bool = False) -> CertFiles:
        files = self.files(kind, name)
        existing = [p for p in (files.cert_file, files.key_file) if p.exists()]
        if existing and not replace:
            raise PkiError(f"{existing[0]} already exists; pass --replace to reissue it (the "
                           "old certificate stays valid until it expires)")
        ca = self.load_ca()
        try:
            issued = issue(ca, kind, name, hosts, days)
        except ValueError as exc:
            raise PkiError(str(exc)) from None
        _make_private_dir(files.cert_file.parent)
        _write_pair(files.cert_file, files.key_file, issued, replace=bool(existing))
        return files

    def ensure(self, kind: CertKind, name: str, hosts: Sequence[str] = (),
               days: float = LEAF_DAYS) -> CertFiles:
        """The certificate `name` of `kind`, issued now if there is none yet or the one there
        does not name every host asked for; for launchers that set up a site in one go (the
        demo, the tests). An operator uses `issue`, which never replaces silently."""
        files = self.files(kind, name)
        if files.cert_file.is_file() and files.key_file.is_file():
            cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
            wanted = {str(n.value) for n in subject_names(hosts)}
            if wanted <= set(hosts_of(cert)):
                return files
            return self.issue(kind, name, hosts, days, replace=True)
        return self.issue(kind, name, hosts, days)

    def certificates(self) -> list[CertInfo]:
        """The CA first, then every issued certificate, by kind and name."""
        found: list[CertInfo] = []
        paths = [(self.ca_file, "ca")] + [
            (path, kind.value) for kind in CertKind
            for path in sorted((self.folder / kind.value).glob("*.pem"))
        ]
        for path, kind in paths:
            if not path.is_file():
                continue
            try:
                cert = x509.load_pem_x509_certificate(path.read_bytes())
            except ValueError as exc:
                raise PkiError(f"{path}: not a PEM certificate: {exc}") from None
            found.append(CertInfo(path, kind, common_name(cert), hosts_of(cert),
                                  cert.not_valid_after_utc))
        return found
