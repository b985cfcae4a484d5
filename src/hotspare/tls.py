"""How a client reaches a node: `http://` or `https://`, and which certificates it trusts.

A node's `address` in site.toml is a bare `host:port`; whether it speaks TLS is a property of the
whole site (`[site] tls = true`, docs/site-config.md), so the scheme is decided here, in one place,
and every URL to a node is built by `node_url`. Verification is always on: a client either trusts
the site's CA bundle (`tls_ca_file` / `--ca-file`) or the public CAs httpx ships (certifi), never
nothing — an unverified connection would let anyone on the network pose as a recording server.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

CA_FILE_ENV = "HOTSPARE_CA_FILE"
"""The CLI's fallback for `--ca-file`, so an operator sets the site's CA once per shell."""


class TlsSetupError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names it and the fix."""


def node_url(address: str, tls: bool) -> str:
    """The base URL of a node's API from its `host:port` and the site's TLS flag."""
    return f"{'https' if tls else 'http'}://{address}"


def _refuse_password() -> bytes:
    raise TlsSetupError("the key is encrypted; hotspare needs an unencrypted PEM key (chmod 600)")


def check_server_files(cert_file: Path, key_file: Path) -> None:
    """Load the pair as the server will, so a bad file stops config validation, not the node's
    first TLS handshake. Raises TlsSetupError naming the field and what to do."""
    for field, path in (("tls_cert_file", cert_file), ("tls_key_file", key_file)):
        if not path.is_file():
            raise TlsSetupError(f"{field}: {path} does not exist or is not a file; give the "
                                "path of a PEM file (relative paths resolve against node.toml)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file, password=_refuse_password)
    except TlsSetupError as exc:
        raise TlsSetupError(f"tls_key_file: {key_file}: {exc}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsSetupError(
            f"tls_cert_file/tls_key_file: cannot load {cert_file} with {key_file}: {exc}; both "
            "must be PEM, and the key must be the certificate's own (unencrypted)"
        ) from None


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """The verifying context a client uses: the site's CA bundle when given, else the system's
    default trust store. Hostname checking stays on, so certificates must name the address."""
    if ca_file is None:
        return ssl.create_default_context()
    if not ca_file.is_file():
        raise TlsSetupError(f"CA file {ca_file} does not exist or is not a file; give the PEM "
                            "bundle of the CA that signed the nodes' certificates")
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise TlsSetupError(f"CA file {ca_file} holds no usable PEM certificate: {exc}") from None


def ca_file_from_env(given: Path | None) -> Path | None:
    """`--ca-file` when given, else $HOTSPARE_CA_FILE, else None (the default trust store)."""
    if given is not None:
        return given
    value = os.environ.get(CA_FILE_ENV, "").strip()
    return Path(value) if value else None


def explain(exc: BaseException) -> str:
    """An operator hint for the transport errors TLS causes, appended to the error's own text."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (f"{text} (the node's certificate is not trusted: pass the site's CA bundle with "
                f"--ca-file or ${CA_FILE_ENV}, or [site] tls_ca_file in node.toml)")
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"{text} (the node does not speak TLS: use http://, or set [site] tls correctly)"
    if "disconnected without sending a response" in text:
        return f"{text} (a node serving HTTPS drops plain HTTP like this: try https://)"
    return text


class PeerTls:
    """How one node reaches the others: the site's TLS flag (read at each use, so the answer
    follows the applied site configuration) and the CA bundle from its `[site]` table."""

    def __init__(self, ca_file: Path | None = None,
                 enabled: Callable[[], bool] = lambda: False) -> None:
        self._ca_file = ca_file
        self._enabled = enabled
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def url(self, address: str) -> str:
        return node_url(address, self._enabled())

    @property
    def verify(self) -> ssl.SSLContext:
        """Built once: loading a CA bundle per probe would cost more than the probe."""
        with self._lock:
            if self._context is None:
                self._context = client_context(self._ca_file)
            return self._context
