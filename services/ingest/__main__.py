"""python -m services.ingest: run the ingest service (same as `poster-layers serve ingest`)."""

import sys

from services.cli import main

sys.exit(main(["serve", "ingest"]))
