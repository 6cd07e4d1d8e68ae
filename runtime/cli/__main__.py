"""``python -m ganrt.runtime.cli``: the ``ganrt`` command without its console script."""

import sys

from . import main

if __name__ == "__main__":  # importing it (module walks, tests) runs nothing
    sys.exit(main())
