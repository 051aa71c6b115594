"""``python -m core.cli``: the ``mammo-robust`` command without an installed package (a bare checkout)."""

import sys

from core.cli import main

sys.exit(main())
