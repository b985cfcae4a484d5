"""The etcd connection options of every command that talks to etcd directly (site apply,
protection, events): the site CA, the operator's client certificate, or the explicit insecure
switch. One set of options and environment variables, so an operator sets them once per shell.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hotspare.config.load import ConfigError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.etcd_security import EtcdSecurityError, EtcdTls

_FILES = (("ca_file", "--etcd-ca-file", "HOTSPARE_ETCD_CA_FILE",
           "PEM bundle of the CA that signed the etcd members' certificates"),
          ("cert_file", "--etcd-cert-file", "HOTSPARE_ETCD_CERT_FILE",
           "your client certificate for etcd (`hotspare pki issue-client`)"),
          ("key_file", "--etcd-key-file", "HOTSPARE_ETCD_KEY_FILE", "the key of that certificate"))


def add_etcd_options(parser: Any) -> None:
    for field, option, env, text in _FILES:
        parser.add_argument(option, dest=f"etcd_{field}", type=Path, default=None,
                            metavar="FILE", help=f"{text} (default: ${env})")
    parser.add_argument("--etcd-insecure-plaintext", action="store_true",
                        help="allow http:// etcd endpoints (no encryption, no authentication: "
                             "local demos only)")


def _given(args: argparse.Namespace, field: str, env: str) -> Path | None:
    value = getattr(args, f"etcd_{field}", None)
    if value is not None:
        return Path(value)
    text = os.environ.get(env, "").strip()
    return Path(text) if text else None


def etcd_tls(args: argparse.Namespace) -> EtcdTls | None:
    """The TLS files from the options (or environment); ConfigError naming the option when one
    is missing on disk."""
    files: dict[str, Path | None] = {}
    for field, option, env, _text in _FILES:
        path = _given(args, field, env)
        if path is not None and not path.is_file():
            raise ConfigError(f"{option} (or ${env}): {path} does not exist or is not a file")
        files[field] = path
    if not any(files.values()):
        return None
    try:
        return EtcdTls(**files)
    except EtcdSecurityError as exc:
        raise ConfigError(f"--etcd-cert-file / --etcd-key-file: {exc}") from None


def coordinator(args: argparse.Namespace, endpoints: Sequence[str], prefix: str,
                **kwargs: Any) -> Coordinator:
    """A Coordinator with the command's etcd options; ConfigError when they do not fit."""
    try:
        return Coordinator(endpoints, prefix, tls=etcd_tls(args),
                           insecure_plaintext=bool(getattr(args, "etcd_insecure_plaintext",
                                                           False)), **kwargs)
    except EtcdSecurityError as exc:
        raise ConfigError(f"etcd: {exc} (options --etcd-ca-file, --etcd-cert-file, "
                          "--etcd-key-file, --etcd-insecure-plaintext)") from None
