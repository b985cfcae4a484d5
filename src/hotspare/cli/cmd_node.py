"""`hotspare node --config FILE`: run a recording server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hotspare.config.load import ConfigError, load_node_config
from hotspare.logs import FORMAT_ENV, FORMATS, LogFormatError
from hotspare.logs import configure as configure_logging


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("node", help="run a recording server (store, recorder, API)")
    parser.add_argument("--config", type=Path, required=True, help="the node's TOML file")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=FORMATS, default=None,
                        help=f"text lines, or one JSON object per line (default: ${FORMAT_ENV}, "
                        "else text)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from hotspare.node.runtime import run_node

    try:
        config = load_node_config(args.config)
        configure_logging(args.log_level, args.log_format, node=config.name)
    except (ConfigError, LogFormatError) as exc:
        print(f"hotspare node: refusing to start: {exc}", file=sys.stderr)
        return 2
    if config.site is not None:  # site mode: role and cameras come from the site in etcd
        from hotspare.node.site_node import run_site_node

        return run_site_node(config)
    return run_node(config)
