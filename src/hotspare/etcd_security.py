"""How a client reaches etcd: TLS with the site CA and its own certificate, or, only when
explicitly asked for, plain HTTP.

etcd is the site's trust root (docs/design.md decision 12): whoever can write to it can rewrite
the site. So the scheme is decided here and nowhere else, and the rules are strict: `https://`
is never turned into `http://`; `http://` is refused unless the caller set `insecure_plaintext`;
an endpoint without a scheme means https unless plaintext was asked for. Standard library only,
so the config models and the etcd launcher can use it without loading the HTTP client.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INSECURE_HINT = ("plain HTTP lets anyone who reaches etcd read and rewrite the site; use "
                 "https:// endpoints with a CA and client certificate (`hotspare pki`), or set "
                 "insecure_plaintext knowingly (local demos only)")


class EtcdSecurityError(ValueError):
    """Endpoints and TLS settings that do not fit together; the message names the setting."""


@dataclass(frozen=True)
class EtcdTls:
    """The files a client presents to etcd. `ca_file` None: the system's trust store."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise EtcdSecurityError("give both the etcd client certificate and its key, or "
                                    "neither (cert_file / key_file)")

    @property
    def client_cert(self) -> tuple[str, str] | None:
        if self.cert_file is None or self.key_file is None:
            return None
        return str(self.cert_file), str(self.key_file)

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context presenting the certificate (for stdlib clients)."""
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None)
        if self.client_cert is not None:
            context.load_cert_chain(*self.client_cert)
        return context


def split_scheme(endpoint: str) -> tuple[str | None, str]:
    """(`http`/`https`/None, the rest) of `endpoint` as written."""
    text = endpoint.strip()
    for scheme in ("http", "https"):
        if text.lower().startswith(scheme + "://"):
            return scheme, text[len(scheme) + 3:]
    if "://" in text:
        raise EtcdSecurityError(f"etcd endpoint {endpoint!r}: only https:// (or http:// with "
                                "insecure_plaintext) is understood")
    return None, text


def endpoint_scheme(endpoints: Sequence[str], tls: EtcdTls | None,
                    insecure_plaintext: bool) -> str:
    """The one scheme every endpoint is reached with, or EtcdSecurityError saying why not."""
    given = {split_scheme(e)[0] for e in endpoints} - {None}
    if len(given) > 1:
        raise EtcdSecurityError("etcd endpoints mix http:// and https://; every member of a "
                                "cluster speaks the same")
    if insecure_plaintext:
        if "https" in given:
            raise EtcdSecurityError("insecure_plaintext is set but the etcd endpoints are "
                                    "https://; remove one of the two")
        if tls is not None and (tls.cert_file is not None or tls.ca_file is not None):
            raise EtcdSecurityError("insecure_plaintext is set together with etcd TLS files; "
                                    "remove one of the two")
        return "http"
    if "http" in given:
        raise EtcdSecurityError(f"etcd endpoint(s) {', '.join(endpoints)} use http://: "
                                + INSECURE_HINT)
    return "https"
