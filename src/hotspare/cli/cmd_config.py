"""`hotspare config check FILE`: validate a node's configuration without starting anything."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hotspare.config.load import ConfigError, load_node_config


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("config", help="check a node configuration file")
    sub = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate FILE and print a summary (no secrets)")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from hotspare.node.runtime import describe

    try:
        config = load_node_config(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(describe(config), indent=2))
    return 0
