"""python -m services.matting: run the matting service (same as `poster-layers serve matting`)."""

import sys

from services.cli import main

sys.exit(main(["serve", "matting"]))
