"""``python -m graia``: the same as the ``graia`` command."""

import sys

from graia.cli import main

sys.exit(main())
