"""Which interpreter runs the simulated cameras, with what environment, and whether it can.

The simulator needs GStreamer's Python bindings, which exist only for Debian's own interpreter (no
PyGObject wheels for the venv's Python), so the venv starts `/usr/bin/python3 -m hotspare.camerasim`
pointed at this package's source tree. Kept in the simulator's package, below both of its starters
(the `hotspare camera-sim` command and the launcher the demo and tests use), so that neither
imports the other. Standard library only: it runs in the product's venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import hotspare

DEFAULT_SIM_PYTHON = "/usr/bin/python3"
INSTALL_HINT = (
    "The camera simulator needs GStreamer with its RTSP server and Python bindings.\n"
    "On Debian/Ubuntu install:\n"
    "  sudo apt-get install python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 \\\n"
    "      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \\\n"
    "      gstreamer1.0-plugins-ugly gstreamer1.0-libav\n"
    "(x264enc comes from gstreamer1.0-plugins-ugly.) Set HOTSPARE_SIM_PYTHON to use another\n"
    "interpreter that can `import gi` with Gst and GstRtspServer."
)
_PROBE = (
    "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "import sys; sys.exit(0 if Gst.ElementFactory.find('x264enc') and "
    "Gst.ElementFactory.find('rtph264pay') and Gst.ElementFactory.find('h264parse') else 3)"
)


def sim_python() -> str:
    return os.environ.get("HOTSPARE_SIM_PYTHON", DEFAULT_SIM_PYTHON)


def source_root() -> Path:
    """The directory that holds the `hotspare` package, for the sim interpreter's PYTHONPATH."""
    return Path(hotspare.__file__).resolve().parent.parent


def sim_command(sim_args: list[str]) -> list[str]:
    return [sim_python(), "-m", "hotspare.camerasim", *sim_args]


def sim_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the sim: our source first on PYTHONPATH, no venv variables."""
    env = dict(os.environ if base is None else base)
    root = str(source_root())
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not old else f"{root}{os.pathsep}{old}"
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONHOME", None)
    return env


def check_gstreamer() -> str | None:
    """None when the sim interpreter has what it needs, else a message saying what is missing."""
    python = sim_python()
    if shutil.which(python) is None and not Path(python).exists():
        return f"{python} not found.\n{INSTALL_HINT}"
    try:
        probe = subprocess.run(
            [python, "-c", _PROBE], env=sim_env(), capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {python}: {exc}\n{INSTALL_HINT}"
    if probe.returncode == 3:
        return f"GStreamer plugins missing (x264enc, h264parse or rtph264pay).\n{INSTALL_HINT}"
    if probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()[-1:] or ["unknown error"]
        return f"{python} cannot load GStreamer ({detail[0]}).\n{INSTALL_HINT}"
    return None
