"""``python -m roark.testing.server``: see :mod:`.cli`."""

import sys

from .cli import main

sys.exit(main())
