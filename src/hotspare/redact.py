"""Addresses with their secrets taken out, for anything a person or a log may see.

Cameras carry credentials in two places of a URL: the user-info (`user:pw@host`), which the
configuration refuses in favour of the camera's own fields, and vendor query parameters such as
`?user=admin&password=…` (many cameras accept nothing else). Both are shown to viewers through
camera health and to operators through logs and configuration errors, so every such text is built
from `redact_url`, never from the raw URL.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY_NAMES = frozenset({
    "password", "passwd", "pass", "pwd", "psw", "secret", "token", "auth", "key", "apikey",
    "api_key", "access_token", "signature", "sig",
})
"""Query parameter names (compared without case) whose value is a secret."""
HIDDEN = "***"


def redact_url(url: str) -> str:
    """`url` without user-info and with secret query values replaced by `***`; a text that does
    not parse as a URL comes back with everything after the scheme's host hidden."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        head, sep, _ = url.partition("://")
        return f"{head}{sep}{HIDDEN}" if sep else HIDDEN
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in SECRET_QUERY_NAMES for name, _ in pairs):
            query = urlencode([(name, HIDDEN if name.lower() in SECRET_QUERY_NAMES else value)
                               for name, value in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
