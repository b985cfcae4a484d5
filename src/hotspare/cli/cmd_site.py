"""`hotspare site`: check a site configuration before it is applied.

`validate` works offline from the file alone, so an operator learns which servers would be
unprotected before the configuration reaches a running site. (`site apply` comes separately.)
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from hotspare.cli.licence_keys import (
    add_licence_keys_option,
    install_licence_keys,
    warn_ignored_document_keys,
)
from hotspare.config.load import ConfigError
from hotspare.site.eligibility import IDLE
from hotspare.site.load import load_site_config, load_site_licences, read_trusted_keys
from hotspare.site.report import protection_report, render_text


def _validate(args: argparse.Namespace) -> int:
    try:
        site = load_site_config(args.file)
        trusted = install_licence_keys(args, args.file)
        warn_ignored_document_keys(site, trusted, read_trusted_keys(site.trusted_keys))
        now = datetime.now(UTC)
        licences = load_site_licences(site, now)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    # Offline there are no live states: assume every spare is up and idle (the best case), so what
    # is reported unprotected here is unprotected whatever happens.
    states = {spare.name: IDLE for spare in site.failover_servers}
    report = protection_report(site, states, licences.licences, now)
    if args.json:
        data = report.to_dict()
        data["refused_licences"] = [
            {"source": r.source, "reason": r.reason.value, "message": str(r)}
            for r in licences.refused
        ]
        print(json.dumps(data, indent=2))
    else:
        cameras = sum(len(server.cameras) for server in site.recording_servers)
        print(f"{args.file}: valid site configuration")
        print(
            f"site {site.site.id!r}"
            + (f" ({site.site.name})" if site.site.name else "")
            + f": master {site.master.name}, {len(site.recording_servers)} recording server(s), "
            f"{cameras} camera(s), {len(site.failover_servers)} spare(s), "
            f"{len(site.etcd.endpoints)} etcd endpoint(s)"
        )
        for refusal in licences.refused:
            print(f"licence refused: {refusal}")
        print(render_text(report))
        print("(spares assumed up and idle; live states come from the running site)")
    if args.strict and (licences.refused or report.unprotected):
        return 4
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("site", help="site configuration")
    commands = parser.add_subparsers(dest="site_command", metavar="ACTION", required=True)
    validate = commands.add_parser(
        "validate", help="check a site.toml offline and show who would be protected"
    )
    validate.add_argument("file", type=Path)
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    validate.add_argument(
        "--strict",
        action="store_true",
        help="exit 4 when a licence is refused or a server is unprotected",
    )
    add_licence_keys_option(validate, "the site file")
    validate.set_defaults(handler=_validate)

    from hotspare.cli.cmd_site_apply import add_apply  # `site apply` (failover, issue 3)

    add_apply(commands)
