"""python -m services.describe: run the describe service (same as `poster-layers serve describe`)."""

import sys

from services.cli import main

sys.exit(main(["serve", "describe"]))
