"""`hotspare camera-sim`: start simulated RTSP cameras (see docs/camera-sim.md).

The simulator needs GStreamer's Python bindings, which exist only for Debian's own interpreter (no
PyGObject wheels for the venv's Python), so this command replaces itself with
`/usr/bin/python3 -m hotspare.camerasim` pointed at this package's source tree
(`hotspare.camerasim.interpreter`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from hotspare.camerasim.interpreter import check_gstreamer, sim_command, sim_env
from hotspare.camerasim.options import add_sim_arguments, to_argv


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "camera-sim",
        help="run simulated RTSP cameras (needs Debian's GStreamer packages)",
        description=(
            "Simulated RTSP cameras at rtsp://127.0.0.1:PORT/<camera-id>, every frame tagged with "
            "an SEI frame number and capture wall time. Prints one line "
            "'HOTSPARE_CAMSIM_READY {json}' when serving. See docs/camera-sim.md."
        ),
    )
    add_sim_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    problem = check_gstreamer()
    if problem is not None:
        print(f"hotspare camera-sim: {problem}", file=sys.stderr)
        return 1
    argv = sim_command(to_argv(args))
    sys.stdout.flush()
    sys.stderr.flush()
    executable = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0]) or argv[0]
    os.execve(executable, argv, sim_env())
    return 0  # not reached
