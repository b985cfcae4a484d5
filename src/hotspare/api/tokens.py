"""User and API-client tokens: how they are made, hashed for the config file, and checked.

A token is `<user name>.<random secret>`. The name in front lets the node verify a presented token
against one stored hash instead of all of them, so an unknown token costs one scrypt at most and a
site with many users does not slow every refusal down. Only the salted scrypt hash is ever written
to a configuration file: whoever reads a node's config cannot log in with what it finds there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from hotspare.config.models import TOKEN_HASH_PATTERN

SCHEME = "scrypt"
# 16 MiB and a few tens of ms per check: costly for a guesser, paid once per token per process
# because the node caches what it has verified (hotspare.api.auth).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_MAX_N = 2**20  # a hash asking for more would take seconds and >1 GiB: refused, not computed
_HASH_RE = re.compile(TOKEN_HASH_PATTERN)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_token(user: str) -> str:
    """A fresh token for `user` (256 random bits after the name)."""
    return f"{user}.{secrets.token_urlsafe(32)}"


def token_user(token: str) -> str:
    """The user a token claims to belong to (checked only by `verify_token`)."""
    return token.partition(".")[0]


def is_user_shaped(token: str) -> bool:
    """Whether `token` could be a user's token at all (`<name>.<secret>`, both non-empty); only
    such a token is worth a hash, so anything else is refused at no cost."""
    name, dot, secret = token.partition(".")
    return bool(name and dot and secret)


def hash_token(token: str, *, salt: bytes | None = None) -> str:
    """The line to store in `[[api.users]] token_hash`: scheme, parameters, salt, digest."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(
        token.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_token(token: str, token_hash: str) -> bool:
    """Constant-time check of `token` against a stored hash; a malformed hash never matches."""
    if not _HASH_RE.fullmatch(token_hash):
        return False
    _, n, r, p, salt, digest = token_hash.split("$")
    if int(n) > _MAX_N or int(n) < 2 or int(n) & (int(n) - 1):
        return False
    try:
        expected = _unb64(digest)
        actual = hashlib.scrypt(token.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected), maxmem=2**31 - 1)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)
