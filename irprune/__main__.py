"""``python -m irprune``: the same as the ``irprune`` command."""

import sys

from .cli import main

sys.exit(main())
