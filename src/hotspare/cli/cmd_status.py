"""`hotspare status --node URL [--node URL …]`: the site at a glance, from its master."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hotspare.cli.tls_option import add_ca_option, client_verify


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "status", help="show the site's servers and spares (follows the master)",
        description="Show every recording server and spare of the site. Give several nodes: any "
                    "of them tells where the master is now, also after a failover of the master.")
    parser.add_argument("--node", action="append", required=True, metavar="URL",
                        help="a node's API URL; repeat or separate with commas")
    parser.add_argument("--token-file", type=Path, required=True, metavar="FILE")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    parser.add_argument("--timeout", type=float, default=5.0)
    add_ca_option(parser)
    parser.set_defaults(handler=_run)


def node_urls(values: list[str]) -> list[str]:
    return [url.strip() for value in values for url in value.split(",") if url.strip()]


def _protection_text(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "unknown"
    if entry.get("protected"):
        return "protected"
    reasons = [str(r.get("message") or r.get("code")) for r in entry.get("reasons", [])]
    return "UNPROTECTED: " + "; ".join(reasons) if reasons else "UNPROTECTED"


def render(servers: dict[str, Any], master: str, master_url: str) -> str:
    lines = [f"master {master} at {master_url}", "", "recording servers:"]
    for s in servers.get("servers", []):
        owner = s.get("owner") or {}
        lines.append(f"  {s['name']:<12} {s['role']:<9} {s['state']:<20} "
                     f"served by {owner.get('node')}  {_protection_text(s.get('protection'))}")
        for r in s.get("reinsert", []):
            lines.append(f"      re-insert from {r['spare']}: {r.get('done')}/{r.get('total')}")
    lines += ["", "failover servers:"]
    for spare in servers.get("spares", []):
        lines.append(f"  {spare['name']:<12} {spare.get('state', '?'):<20} "
                     f"licensed={spare.get('licensed')} allotment={spare.get('allotment')}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from hotspare.client.site_client import SiteClient, SiteUnreachable

    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
        verify = client_verify(args)
    except (OSError, ValueError) as exc:
        print(f"hotspare status: cannot read the token or CA file: {exc}", file=sys.stderr)
        return 2
    client = SiteClient(node_urls(args.node), token, timeout=args.timeout, verify=verify)
    try:
        servers = client.get("/site/servers")
    except SiteUnreachable as exc:
        print(f"hotspare status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        found = {"name": client.master_name, "url": client.master_url}
        print(json.dumps({**servers, "master_endpoint": found}, indent=2))
    else:
        print(render(servers, str(client.master_name), str(client.master_url)))
    return 0
