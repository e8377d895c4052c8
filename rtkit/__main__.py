"""``python -m rtkit``: see :mod:`rtkit.cli`."""

import sys

from rtkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
