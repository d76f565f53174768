"""``python -m tiling [render] ARGS``: ``braggtile render`` without the service package."""

import sys

from tiling.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv[1:] if argv[:1] == ["render"] else argv))
