"""`python -m bench.failover`."""

import sys

from bench.failover.run import main

sys.exit(main())
