"""`python -m bench.reinsert`."""

import sys

from bench.reinsert.run import main

sys.exit(main())
