"""``python -m ganrt.runtime.cli``: the `ganrt` command (the package's ``main``)."""

import sys

from . import main

if __name__ == "__main__":  # importing this module (as the import-rule test does) runs nothing
    sys.exit(main())
