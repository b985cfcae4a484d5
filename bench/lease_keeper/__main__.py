"""`python -m bench.lease_keeper`."""

import sys

from bench.lease_keeper.run import main

sys.exit(main())
