"""python -m services.decompose: run the decompose service (same as `poster-layers serve decompose`)."""

import sys

from services.cli import main

sys.exit(main(["serve", "decompose"]))
