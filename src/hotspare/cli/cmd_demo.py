"""`hotspare demo`: run a complete failover site on this machine (see hotspare.demo.runner)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "demo", help="run a demo site: etcd, simulated cameras, two recording servers, a spare"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("var/demo"),
        help="working folder, emptied at start (default: var/demo)",
    )
    parser.add_argument("--cameras-per-server", type=int, default=3)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument(
        "--scenario",
        choices=["none", "crash"],
        default="none",
        help="crash: kill rec-2, then restart it (see --crash-after, --down-for)",
    )
    parser.add_argument("--crash-after", type=float, default=20.0)
    parser.add_argument("--down-for", type=float, default=20.0)
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from hotspare.demo.runner import DemoOptions, run_demo

    if args.cameras_per_server < 1:
        raise SystemExit("hotspare demo: --cameras-per-server must be at least 1")
    return run_demo(
        DemoOptions(
            base_dir=args.dir.resolve(),
            cameras_per_server=args.cameras_per_server,
            width=args.width,
            height=args.height,
            fps=args.fps,
            scenario=args.scenario,
            duration=args.duration,
            crash_after=args.crash_after,
            down_for=args.down_for,
        )
    )
