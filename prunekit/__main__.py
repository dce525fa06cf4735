"""``python -m prunekit``: the ``prunekit`` command (also ``torchrun -m prunekit`` / ``accelerate launch -m``)."""

from prunekit.cli import main

raise SystemExit(main())
