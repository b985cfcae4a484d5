"""`hotspare site apply site.toml`: validate a site configuration and store it in etcd.

Added to the `site` command by `cmd_site.register` (this module's own `register` adds nothing, so
the command dispatcher's discovery of `cmd_*` modules stays harmless). Validation is the same as
`site validate`; a refused licence is reported and does not count, and `--strict` turns it (or an
unprotected server) into a refusal so that nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from hotspare.config.load import ConfigError
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.failover import keys, site_config
from hotspare.site.eligibility import IDLE
from hotspare.site.load import load_site_config, load_site_licences
from hotspare.site.report import protection_report, render_text


def _apply(args: argparse.Namespace) -> int:
    try:
        site = load_site_config(args.file)
        licences = load_site_licences(site, datetime.now(UTC))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    states = {spare.name: IDLE for spare in site.failover_servers}
    report = protection_report(site, states, licences.licences, datetime.now(UTC))
    for refusal in licences.refused:
        print(f"licence refused: {refusal}", file=sys.stderr)
    if args.strict and (licences.refused or report.unprotected):
        print(render_text(report), file=sys.stderr)
        print("refusing to apply (--strict); nothing was written", file=sys.stderr)
        return 4
    endpoints = args.etcd or site.etcd.endpoints
    coord = Coordinator(endpoints, keys.site_prefix(site.site.id), timeout=2.0, deadline=10.0)
    try:
        revision, _ = site_config.apply(coord, site)
    except (CoordinationError, ConfigError) as exc:
        print(f"site {site.site.id!r} not applied: {exc}", file=sys.stderr)
        return 3
    finally:
        coord.close()
    print(f"applied site {site.site.id!r} at etcd revision {revision} "
          f"({len(site.recording_servers)} recording server(s), "
          f"{len(site.failover_servers)} spare(s), {len(licences.licences)} licence(s))")
    print(render_text(report))
    return 0


def add_apply(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    apply = commands.add_parser("apply", help="validate a site.toml and store it in etcd")
    apply.add_argument("file", type=Path)
    apply.add_argument("--etcd", action="append", metavar="URL",
                       help="etcd endpoint (repeatable); default: the file's [etcd] endpoints")
    apply.add_argument("--strict", action="store_true",
                       help="refuse (exit 4) when a licence is refused or a server unprotected")
    apply.set_defaults(handler=_apply)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Nothing of its own: `apply` hangs under `site` (see module docstring)."""
