"""``python -m benchmarks.efficiency`` (or ``python -m prunekit.benchmarks.efficiency``)."""

import sys

from .runner import main

sys.exit(main())
