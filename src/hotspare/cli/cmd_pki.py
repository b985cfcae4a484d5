"""`hotspare pki …`: the site CA and the certificates of etcd members, nodes and operators.

    hotspare pki init-ca pki/
    hotspare pki issue-etcd pki/ --name m1 --host 10.0.0.11 --host etcd1.example
    hotspare pki issue-node pki/ --name rec-1 --host 10.0.0.21
    hotspare pki issue-client pki/ --name admin
    hotspare pki site-secret pki/          # the key camera passwords are sealed with
    hotspare pki show pki/

docs/site-config.md, "Site PKI", says which file goes where and how to renew.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from hotspare.pki.certs import CertKind
from hotspare.pki.store import CA_DAYS, LEAF_DAYS, PkiError, SitePki
from hotspare.signing_keys import KeyFileError
from hotspare.site_secret import SITE_SECRET_FILE, create_site_secret

_KINDS = {"issue-etcd": CertKind.ETCD, "issue-node": CertKind.NODE,
          "issue-client": CertKind.CLIENT}
_LABEL = {CertKind.ETCD: "etcd member", CertKind.NODE: "node", CertKind.CLIENT: "client"}
_WHAT = {
    CertKind.ETCD: "an etcd member (server for clients and peers, client of its peers)",
    CertKind.NODE: "a node (its HTTPS API, and its client identity towards etcd and other nodes)",
    CertKind.CLIENT: "an operator or tool (client of etcd and of nodes)",
}


def _init_ca(args: argparse.Namespace) -> int:
    pki = SitePki.init(args.dir, args.ca_name, args.days)
    print(f"created the site CA {pki.ca_file} (key {pki.ca_key_file}, mode 0600), valid "
          f"{args.days:g} days; give ca.pem to every node and member, keep ca.key here")
    return 0


def _issue(args: argparse.Namespace) -> int:
    kind = _KINDS[args.pki_command]
    files = SitePki(args.dir).issue(kind, args.name, args.host or [], args.days,
                                    replace=args.replace)
    print(f"{'reissued' if args.replace else 'issued'} {_LABEL[kind]} certificate {args.name!r}: "
          f"{files.cert_file} and key {files.key_file} (mode 0600), signed by {files.ca_file}")
    return 0


def _show(args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.UTC)
    certificates = SitePki(args.dir).certificates()
    if not certificates:
        print(f"{args.dir}: no certificates (start with `hotspare pki init-ca {args.dir}`)")
        return 1
    for info in certificates:
        left = info.days_left(now)
        state = "EXPIRED" if left <= 0 else f"{left:.0f} days left"
        hosts = f"  hosts {', '.join(info.hosts)}" if info.hosts else ""
        print(f"{info.kind:<8} {info.name:<24} expires {info.not_after:%Y-%m-%d} "
              f"({state}){hosts}  {info.path}")
    return 0


def _site_secret(args: argparse.Namespace) -> int:
    path = args.dir / SITE_SECRET_FILE
    secret = create_site_secret(path, rotate=args.rotate)
    if args.rotate:
        print(f"{path}: new key {secret.current_id} seals from now on; the {len(secret.keys) - 1} "
              "older key(s) still open. Copy the file to every node, restart them, `site apply` "
              "again, then drop the old line(s) (docs/deploy.md)")
    else:
        print(f"created the site secret {path} (key {secret.current_id}, mode 0600): copy it "
              f"beside every node's node.toml and beside site.toml; it seals camera passwords")
    return 0


def _run(args: argparse.Namespace) -> int:
    handler = {"init-ca": _init_ca, "show": _show,
               "site-secret": _site_secret}.get(args.pki_command, _issue)
    try:
        return handler(args)
    except (PkiError, KeyFileError, OSError) as exc:
        print(f"hotspare pki {args.pki_command}: {exc}", file=sys.stderr)
        return 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("pki", help="site CA and certificates for etcd, nodes, CLI")
    commands = parser.add_subparsers(dest="pki_command", metavar="PKI_COMMAND", required=True)
    init = commands.add_parser("init-ca", help="create the site CA in DIR (refuses to replace one)")
    init.add_argument("dir", type=Path)
    init.add_argument("--ca-name", default="hotspare site CA", help="the CA's common name")
    init.add_argument("--days", type=float, default=CA_DAYS, help="validity (default %(default)g)")
    for command, kind in _KINDS.items():
        issue = commands.add_parser(command, help=f"issue a certificate for {_WHAT[kind]}")
        issue.add_argument("dir", type=Path, help="the folder made by `pki init-ca`")
        issue.add_argument("--name", required=True,
                           help="the certificate's name (CN); a node's must be its node name")
        issue.add_argument("--host", action="append", metavar="ADDR",
                           help="IP address or DNS name clients connect to (repeatable)"
                           + ("; not needed for a client" if kind is CertKind.CLIENT else ""))
        issue.add_argument("--days", type=float, default=LEAF_DAYS,
                           help="validity (default %(default)g; never beyond the CA's)")
        issue.add_argument("--replace", action="store_true",
                           help="reissue an existing certificate and key (renewal)")
    secret = commands.add_parser(
        "site-secret", help=f"create DIR/{SITE_SECRET_FILE}, the key camera passwords are sealed "
        "with in etcd (refuses to replace one)")
    secret.add_argument("dir", type=Path)
    secret.add_argument("--rotate", action="store_true",
                        help="put a new sealing key in front of the file's keys (rotation)")
    show = commands.add_parser("show", help="list the CA and issued certificates with expiry")
    show.add_argument("dir", type=Path)
    parser.set_defaults(handler=_run)
