"""`python -m hotspare.camerasim`: run under Debian's python, which has GStreamer's bindings."""

import sys

from hotspare.camerasim.server import main

sys.exit(main())
