"""Ed25519 keys that sign licences: generating, storing, reading, and naming them.

A key's id is derived from the public key itself, so a licence names the key that signed it and a
site cannot be talked into trusting a key under a misleading name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


class KeyFileError(Exception):
    """A key file that cannot be used; the message says which file and why."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class TrustedPublicKey:
    key_id: str
    key: Ed25519PublicKey
    source: str


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def parse_public_key(text: str, source: str) -> TrustedPublicKey:
    """Accept PEM, or base64 of the 32 raw bytes (short enough to paste into site.toml)."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            loaded = serialization.load_pem_public_key(stripped.encode("ascii"))
        else:
            raw = base64.b64decode(stripped, validate=True)
            loaded = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        raise KeyFileError(f"{source}: not an Ed25519 public key ({exc})") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise KeyFileError(f"{source}: not an Ed25519 public key")
    return TrustedPublicKey(key_id=key_id(loaded), key=loaded, source=source)


def read_key_text(path: Path, what: str) -> str:
    """An ASCII key file's text, or KeyFileError naming the file and `what` it should hold."""
    try:
        return path.read_text(encoding="ascii")
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not {what} (not text)") from None


def read_public_key(path: Path) -> TrustedPublicKey:
    return parse_public_key(read_key_text(path, "an Ed25519 public key"), str(path))


def read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read private key ({exc.strerror or exc})") from None
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not an unencrypted Ed25519 private key ({exc})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return loaded


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create, never overwrite: replacing a signing key orphans every licence it signed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from None
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.name == "posix":
        os.chmod(path, mode)  # the umask may have widened or narrowed what os.open set


def generate_keypair(directory: Path, name: str = "licence-signing") -> tuple[Path, Path, str]:
    """Write NAME.key (PKCS#8 PEM, 0600 where supported) and NAME.pub; return paths and key id."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / f"{name}{PRIVATE_SUFFIX}"
    public_path = directory / f"{name}{PUBLIC_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a key")
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_new(private_path, private_pem, 0o600)
    _write_new(public_path, public_key_pem(private_key.public_key()).encode("ascii"), 0o644)
    return private_path, public_path, key_id(private_key.public_key())


# --------------------------------------------------------------------------- trust roots

TRUST_ROOTS_FILE = "licence-keys.pem"
"""The installation's licence trust roots: PEM public keys, one after the other, in a file beside
node.toml on every node (`[site] licence_keys_file`) and beside site.toml for `site apply` and
`site validate` (`--licence-keys`)."""

BUILT_IN_KEYS: tuple[TrustedPublicKey, ...] = ()
"""Keys every installation trusts without a file. None yet: no vendor key has been published; a
release that ships one lists it here, so that a node needs no file for the vendor's licences."""

_PEM_BLOCK = "-----BEGIN PUBLIC KEY-----"

_installed: tuple[TrustedPublicKey, ...] = BUILT_IN_KEYS


def read_trust_roots(path: Path) -> list[TrustedPublicKey]:
    """Every public key in `path` (one or more PEM blocks), then the built-in ones.

    Why a file of the installation and not the site document: the licences arrive in that
    document (etcd `config/site`), so whoever can write it could add a key of their own next to
    a licence they signed with it (issue 11). A key is trusted only when someone with access to
    the machine put it there."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the licence trust roots "
                           f"({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not a PEM file of public keys (not text)") from None
    blocks = text.split(_PEM_BLOCK)[1:]
    if not blocks:
        raise KeyFileError(f"{path}: holds no '{_PEM_BLOCK}' block; put the licence signing "
                           "key's .pub file(s) in it")
    found = [parse_public_key(_PEM_BLOCK + block, f"{path} key {index + 1}")
             for index, block in enumerate(blocks)]
    return found + [key for key in BUILT_IN_KEYS if key.key_id not in {k.key_id for k in found}]


def install_trust_roots(keys: list[TrustedPublicKey] | tuple[TrustedPublicKey, ...]) -> None:
    """Make `keys` the keys this process verifies licences with (a node, or one CLI command).
    Set once at start, from the installation's file; until then only the built-in keys count."""
    global _installed
    _installed = tuple(keys)


def trust_roots() -> tuple[TrustedPublicKey, ...]:
    """The keys licences are verified with in this process (`install_trust_roots`)."""
    return _installed
