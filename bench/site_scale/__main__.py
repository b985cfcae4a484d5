"""`python -m bench.site_scale`."""

import sys

from bench.site_scale.run import main

sys.exit(main())
