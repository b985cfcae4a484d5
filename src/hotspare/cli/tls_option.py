"""`--ca-file` for the commands that talk to nodes' APIs (status, timeline).

One option, one environment variable, one error text, so every command trusts nodes the same way:
the site's CA bundle when given, else the system's trust store — never no verification.
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path
from typing import Any

from hotspare.tls import CA_FILE_ENV, ca_file_from_env, client_context


def add_ca_option(parser: Any) -> None:
    parser.add_argument(
        "--ca-file", type=Path, default=None, metavar="FILE",
        help="PEM bundle of the CA that signed the nodes' certificates, for https:// nodes "
             f"(default: ${CA_FILE_ENV}, else the system's trust store)",
    )


def client_verify(args: argparse.Namespace) -> ssl.SSLContext:
    """Raises TlsSetupError (a ValueError) naming the file when it cannot be used."""
    return client_context(ca_file_from_env(args.ca_file))
