"""`hotspare store check DIR`: verify a store offline, against every invariant of its schema;
`hotspare store reindex-quarantine DIR`: let reconcile try quarantined files again.

For the operator who wants to know, before trusting a disk again (after a power cut, a full disk, a
failed RAID member), whether the video the index lists is really there and really what was
recorded. Exit status: 0 clean, 1 problems found, 2 could not check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_CLEAN, EXIT_PROBLEMS, EXIT_CANNOT_CHECK = 0, 1, 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "store", help="check a segment store offline",
        description="Offline tools for a node's segment store(s).")
    sub = parser.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check", help="verify files and index against the schema's invariants",
        description="Verify every segment file (size, SHA-256, boxes) and every index row "
        "(times, skips, flags, overlaps) of the store(s) in DIR. Read only unless --repair. "
        "Exit status: 0 clean, 1 problems found, 2 could not check.")
    check.add_argument("dir", type=Path, metavar="DIR",
                       help="the node's data_dir (its stores are found inside) or one store "
                       "directory (the one holding index.sqlite3)")
    check.add_argument("--json", action="store_true", help="print one JSON document instead of "
                       "lines")
    check.add_argument("--repair", action="store_true",
                       help="also do the safe repairs (docs/store.md, 'Checking a store'); "
                       "refused while a node has the store open")
    check.add_argument("--no-hash", action="store_true",
                       help="skip SHA-256 of every file (sizes and boxes are still checked): "
                       "minutes instead of hours on a large store")
    check.set_defaults(handler=_check)
    requarantine = sub.add_parser(
        "reindex-quarantine", help="try to index quarantined segment files again",
        description="With the node stopped: move every file in the store(s)' quarantine/ back "
        "to its place under segments/ (when free) and open the store, so that reconcile indexes "
        "the segments of the store's own runs and puts anything else back in quarantine. "
        "Nothing is deleted. Exit status: 0 done, 1 files stayed in quarantine, 2 could not run "
        "(no store, or a node holds it).")
    requarantine.add_argument("dir", type=Path, metavar="DIR",
                              help="the node's data_dir or one store directory")
    requarantine.add_argument("--name", help="open the store as this server (default: the "
                              "server that created it); only that server's runs are indexed")
    requarantine.set_defaults(handler=_reindex_quarantine)


def _check(args: argparse.Namespace) -> int:
    from hotspare.store.check import CheckError, check_store, find_stores

    try:
        roots = find_stores(args.dir)
    except CheckError as exc:
        if args.json:
            print(json.dumps({"clean": False, "error": str(exc), "stores": []}))
        else:
            print(f"hotspare store check: {exc}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    # Each store is reported as soon as it is done, and one that cannot be checked (a node holds
    # it for --repair) does not stop the others: repairs already made must never go unreported.
    results: list[dict[str, Any]] = []
    status = EXIT_CLEAN
    for root in roots:
        try:
            report = check_store(root, repair=args.repair, hash_files=not args.no_hash)
        except CheckError as exc:
            status = EXIT_CANNOT_CHECK
            results.append({"store": str(root), "clean": False, "error": str(exc)})
            if not args.json:
                print(f"hotspare store check: {exc}", file=sys.stderr)
            continue
        if not report.clean and status == EXIT_CLEAN:
            status = EXIT_PROBLEMS
        results.append(report.to_json())
        if not args.json:
            for line in report.lines():
                print(line, flush=True)
    if args.json:
        print(json.dumps({"clean": status == EXIT_CLEAN, "stores": results}, indent=2))
    return status


def _reindex_quarantine(args: argparse.Namespace) -> int:
    from hotspare.store.check import CheckError, find_stores
    from hotspare.store.lockfile import StoreLocked
    from hotspare.store.requarantine import reindex_quarantine

    try:
        roots = find_stores(args.dir)
    except CheckError as exc:
        print(f"hotspare store reindex-quarantine: {exc}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    status = EXIT_CLEAN
    for root in roots:
        try:
            report = reindex_quarantine(root, args.name)
        except StoreLocked:
            print(f"hotspare store reindex-quarantine: {root} is open in a running node; stop "
                  "the node first", file=sys.stderr)
            status = EXIT_CANNOT_CHECK
            continue
        for line in report.lines():
            print(line, flush=True)
        if (report.kept or report.quarantined_again) and status == EXIT_CLEAN:
            status = EXIT_PROBLEMS
    return status
