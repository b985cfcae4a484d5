"""The `hotspare` command.

Each sub-command lives in its own module `hotspare.cli.cmd_<name>` exposing
`register(subparsers) -> None`; this module only discovers them, so that adding a command never
means editing a shared file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Sequence

import hotspare
import hotspare.cli as cli_package


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotspare",
        description="Network video recorder with hot-spare failover servers.",
    )
    parser.add_argument("--version", action="version", version=f"hotspare {hotspare.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if module_info.name.startswith("cmd_"):
            module = importlib.import_module(f"{cli_package.__name__}.{module_info.name}")
            module.register(subparsers)
    return parser


_RELATIVE_TIME = re.compile(r"^-\d+(\.\d+)?[smhd]$")
_TIME_OPTIONS = ("--from", "--to")


def join_relative_times(argv: Sequence[str]) -> list[str]:
    """`--from -5m` would be read by argparse as an unknown option `-5m`; glue such a relative
    time to its option (`--from=-5m`) so the form the docs show works as typed."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in _TIME_OPTIONS and _RELATIVE_TIME.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_relative_times(sys.argv[1:] if argv is None else argv))
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result = handler(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
