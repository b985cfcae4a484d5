"""`python -m bench.reads`."""

import sys

from bench.reads.run import main

sys.exit(main())
