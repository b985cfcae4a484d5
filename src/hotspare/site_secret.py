"""The site secret: the key that keeps camera passwords out of etcd's clear text (issue 11).

`site apply` seals every camera password of the site document (and the value of every secret
query parameter of a camera URL, `?password=…`) with the site secret before it writes
`config/site`; etcd, every API answer and every log then carry only the sealed form
(`sealed:v1:<key id>:<base64>`, AES-256-GCM, the camera id bound in as associated data so a
sealed password cannot be moved to another camera). Each node holds the same secret in a file
beside its node.toml (`[site] site_secret_file`) and opens a password only when it connects to
the camera (`hotspare.recorder.source`).

A secret file holds one key per line, the first one seals; the others still open. Rotation
(docs/deploy.md, "Camera passwords and the site secret") is therefore: add a new first line on
every node, apply the site again (everything is sealed with the new key), then drop the old line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hotspare.redact import SECRET_QUERY_NAMES
from hotspare.signing_keys import KeyFileError, _write_new, read_key_text

SITE_SECRET_FILE = "site-secret.key"
"""Its default name, beside node.toml on every node and beside site.toml for `site apply`."""

SEALED_PREFIX = "sealed:v1:"
_LINE_PREFIX = "hotspare-site-secret-v1:"
_NONCE_BYTES = 12


class SecretError(Exception):
    """A sealed password that cannot be opened here; the message names the camera and the fix."""


def _aad(camera_id: str, field: str) -> bytes:
    return f"hotspare camera {field} {camera_id}".encode()


@dataclass(frozen=True)
class SiteSecret:
    """The keys of one secret file; `keys[0]` seals."""

    keys: tuple[bytes, ...]

    @staticmethod
    def key_id(key: bytes) -> str:
        """Names a key in sealed values and messages without revealing it."""
        return hashlib.sha256(b"hotspare site secret id:" + key).hexdigest()[:12]

    @property
    def current_id(self) -> str:
        return self.key_id(self.keys[0])

    def derive(self, label: bytes) -> bytes:
        """A key for another purpose (e.g. playback grants) from the sealing key, so one file
        the nodes already hold keys both and rotates both."""
        return hmac.new(self.keys[0], b"hotspare site secret derive:" + label,
                        hashlib.sha256).digest()

    def seal(self, camera_id: str, password: str, field: str = "password") -> str:
        """`field`: `password`, or the URL query parameter the value belongs to."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, password.encode("utf-8"),
                                              _aad(camera_id, field))
        text = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{SEALED_PREFIX}{self.current_id}:{text}"

    def open(self, camera_id: str, value: str, field: str = "password") -> str:
        key_id, blob = _split(camera_id, value)
        for key in self.keys:
            if self.key_id(key) == key_id:
                try:
                    plain = AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:],
                                                _aad(camera_id, field))
                except InvalidTag:
                    raise SecretError(
                        f"camera {camera_id}: its sealed password does not open with site "
                        f"secret {key_id} (damaged, or sealed for another camera); apply the "
                        "site configuration again with `hotspare site apply`") from None
                return plain.decode("utf-8")
        held = ", ".join(self.key_id(k) for k in self.keys)
        raise SecretError(
            f"camera {camera_id}: its password is sealed with site secret {key_id}, which this "
            f"node does not hold (it holds {held}); copy the site's current {SITE_SECRET_FILE} "
            "to this node (mode 0600, [site] site_secret_file) and restart it, or apply the "
            "site again with the secret the nodes hold")


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def _split(camera_id: str, value: str) -> tuple[str, bytes]:
    key_id, _, text = value.removeprefix(SEALED_PREFIX).partition(":")
    try:
        blob = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        blob = b""
    if not key_id or len(blob) <= _NONCE_BYTES:
        raise SecretError(f"camera {camera_id}: its sealed password is damaged; apply the site "
                          "configuration again with `hotspare site apply`")
    return key_id, blob


def read_site_secret(path: Path) -> SiteSecret:
    """Raises KeyFileError naming the file and what is wrong with it."""
    text = read_key_text(path, "a site secret file")
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.urlsafe_b64decode(line.removeprefix(_LINE_PREFIX).encode("ascii"))
        except (binascii.Error, UnicodeEncodeError):
            key = b""
        if not line.startswith(_LINE_PREFIX) or len(key) != 32:
            raise KeyFileError(f"{path} line {number}: not a site secret key (make one with "
                               "`hotspare pki site-secret`)")
        keys.append(key)
    if not keys:
        raise KeyFileError(f"{path}: holds no key (make one with `hotspare pki site-secret`)")
    return SiteSecret(tuple(keys))


def new_key_line() -> str:
    return _LINE_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def create_site_secret(path: Path, rotate: bool = False) -> SiteSecret:
    """A new secret file (0600, never overwritten); with `rotate`, a new first key in front of
    the keys `path` holds, written beside it and renamed over it."""
    lines = [new_key_line()]
    if rotate:
        old = read_site_secret(path)
        lines += [_LINE_PREFIX + base64.urlsafe_b64encode(k).decode("ascii") for k in old.keys]
        staged = path.with_name(path.name + ".new")
        staged.unlink(missing_ok=True)
        _write_new(staged, ("\n".join(lines) + "\n").encode("ascii"), 0o600)
        staged.replace(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_new(path, ("\n".join(lines) + "\n").encode("ascii"), 0o600)
    return read_site_secret(path)


# --------------------------------------------------------------------------- this process

_installed: SiteSecret | None = None
_installed_from: Path | None = None


def installed_site_secret() -> SiteSecret | None:
    """The secret installed at start, if this node holds one."""
    return _installed


def install_site_secret(secret: SiteSecret | None, source: Path | None = None) -> None:
    """The secret this process opens camera passwords with (a node, at start)."""
    global _installed, _installed_from
    _installed, _installed_from = secret, source


def seal_url(camera_id: str, url: str, secret: SiteSecret | None) -> str:
    """`url` with the values of its secret query parameters (`?password=…`, which many cameras
    need: `hotspare.redact.SECRET_QUERY_NAMES`) sealed; raises SecretError without a secret."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(_secret_query(name, value) for name, value in pairs):
        return url
    if secret is None:
        raise SecretError(f"camera {camera_id}: its URL carries a secret query parameter")
    sealed = [(name, secret.seal(camera_id, value, f"query {name}")
               if _secret_query(name, value) else value) for name, value in pairs]
    return urlunsplit(parts._replace(query=urlencode(sealed)))


def reveal_url(camera_id: str, url: str) -> str:
    """`url` with sealed query values opened, for the RTSP connect only. Raises SecretError."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(is_sealed(value) for _, value in pairs):
        return url
    opened = [(name, reveal_password(camera_id, value, f"query {name}")) for name, value in pairs]
    return urlunsplit(parts._replace(query=urlencode(opened)))


def _secret_query(name: str, value: str) -> bool:
    return name.lower() in SECRET_QUERY_NAMES and bool(value) and not is_sealed(value)


def reveal_password(camera_id: str, value: str, field: str = "password") -> str:
    """The camera's password in clear, for the RTSP connect only; a password that is not sealed
    (a standalone node's own file) comes back as it is. Raises SecretError."""
    if not is_sealed(value):
        return value
    if _installed is None:
        where = f" ({_installed_from} is missing)" if _installed_from is not None else ""
        raise SecretError(
            f"camera {camera_id}: its password is sealed with the site secret, and this node "
            f"holds none{where}; copy the site's {SITE_SECRET_FILE} beside this node's "
            "node.toml (mode 0600, or set [site] site_secret_file) and restart the node")
    return _installed.open(camera_id, value, field)
