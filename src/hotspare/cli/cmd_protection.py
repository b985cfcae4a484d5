"""`hotspare protection`: who is protected now, from the running site (etcd), and why not.

Unlike `site validate` (offline, every spare assumed up and idle), this reads the applied
configuration, the licences it holds and each spare's live state (registration and claims), so a
spare that is down or covering another server shows as such. The same computation backs
`GET /api/v1/site/protection` and the `protection` events (hotspare/sitestate/protection.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hotspare.cli.etcd_option import add_etcd_options, coordinator
from hotspare.cli.licence_keys import add_licence_keys_option, install_licence_keys
from hotspare.config.load import ConfigError, load_node_config
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.signing_keys import TRUST_ROOTS_FILE
from hotspare.site.report import render_text
from hotspare.sitestate import applied as site_config
from hotspare.sitestate import layout
from hotspare.sitestate.protection import live_report, report_json


def _coordinator(args: argparse.Namespace) -> tuple[Coordinator, str]:
    if args.config is not None:
        node = load_node_config(args.config)
        if node.site is not None and args.licence_keys is None and \
                node.site.licence_keys_file.is_file():
            args.licence_keys = node.site.licence_keys_file
        if node.site is None:
            raise ConfigError(f"{args.config}: has no [site] table; pass --etcd and --site")
        return Coordinator.for_member(node.site), node.site.id
    if not args.etcd or not args.site:
        raise ConfigError("name the site: --config NODE.toml, or --etcd URL --site ID")
    return coordinator(args, args.etcd, layout.site_prefix(args.site)), str(args.site)


def _run(args: argparse.Namespace) -> int:
    try:
        coord, site_id = _coordinator(args)
        install_licence_keys(args, Path(TRUST_ROOTS_FILE).absolute())
    except ConfigError as exc:
        print(f"hotspare protection: {exc}", file=sys.stderr)
        return 2
    try:
        applied = site_config.read(coord)
        if applied is None:
            print(f"hotspare protection: site {site_id!r} has no configuration in etcd; run "
                  "`hotspare site apply site.toml` first", file=sys.stderr)
            return 2
        report = live_report(coord, applied)
    except (CoordinationError, ConfigError) as exc:
        print(f"hotspare protection: {exc}", file=sys.stderr)
        return 3
    finally:
        coord.close()
    if args.json:
        print(json.dumps(report_json(report, applied), indent=2))
    else:
        print(f"site {site_id!r} (configuration revision {applied.mod_revision}), "
              f"live states from etcd")
        for refusal in applied.licences.refused:
            print(f"licence not counted: {refusal}")
        print(render_text(report))
    if args.strict and report.unprotected:
        return 4
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "protection", help="which recording servers a spare could take over now, and why not")
    parser.add_argument("--config", type=Path, help="a node's TOML file with a [site] table")
    parser.add_argument("--etcd", action="append", metavar="URL", help="etcd endpoint (repeatable)")
    parser.add_argument("--site", help="site id (with --etcd)")
    add_etcd_options(parser)
    add_licence_keys_option(parser, "node.toml with --config, else in this folder")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="exit 4 when a recording server is unprotected")
    parser.set_defaults(handler=_run)
