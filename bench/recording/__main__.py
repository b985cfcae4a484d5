"""`python -m bench.recording`."""

import sys

from bench.recording.run import main

sys.exit(main())
