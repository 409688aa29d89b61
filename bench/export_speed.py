"""Export speed: all four formats (PSD, PPTX, SVG, ZIP) for one poster; prints JSON.

1. In memory (the runner at job end): `build_exports` from the layers, sharing encodings.
2. From the blob store (the gateway on demand): `ensure_export` for psd, pptx, svg and zip on a
   finished job's files (layer PNGs decoded, exports stored), in a file:// store in a temp folder.

Target: all four formats for a 1024x1024, 10-layer poster in at most 1 s (the in-memory path).
Each figure is the median of --runs runs; the machine is shared, so medians, not minima, and
the CPU time (all threads) and the load average beside the wall time.

Usage: python -m bench.export_speed [--runs 5] [--size 1024] [--layers 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from samples.synthetic import SyntheticPoster, make_poster
from services.common.blobstore import BlobStore
from services.exports import FORMATS, build_exports, ensure_export
from services.exports.build import build_from_source
from services.exports.source import ExportSource
from services.ingest.artifacts import JobOutput, write_artifacts

TARGET_S = 1.0


def poster_with(layer_count: int, size: int) -> tuple[int, SyntheticPoster]:
    """The first synthetic poster (by seed) with exactly `layer_count` layers."""
    for seed in range(500):
        poster = make_poster(seed, size, size)
        if len(poster.layers) == layer_count:
            return seed, poster
    raise SystemExit(f"no synthetic poster of {layer_count} layers in seeds 0-499; the generator makes 4 to 13")


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def cpu_timed(function: Callable[[], object]) -> float:
    """CPU seconds of this process (all threads): less sensitive than wall time to other load."""
    started = time.process_time()
    function()
    return time.process_time() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=10)
    args = parser.parse_args(argv)
    seed, poster = poster_with(args.layers, args.size)
    manifest = {"source": {"file": "poster.png"}, "layers": []}

    in_memory = [timed(lambda: build_exports(poster.layers, args.size, args.size, manifest)) for _ in range(args.runs)]
    in_memory_cpu = [
        cpu_timed(lambda: build_exports(poster.layers, args.size, args.size, manifest)) for _ in range(args.runs)
    ]
    per_format = {}
    for fmt in FORMATS:
        # Each format alone, from a fresh source: it pays for the encodings it needs itself.
        per_format[fmt] = statistics.median(
            timed(lambda fmt=fmt: build_from_source(ExportSource(args.size, args.size, poster.layers, manifest), [fmt]))
            for _ in range(args.runs)
        )

    with tempfile.TemporaryDirectory() as folder:
        blobs = BlobStore(f"file://{folder}")
        output = JobOutput("bench", args.size, args.size, "poster.png", "0" * 64, "synthetic", "", "", poster.layers)
        manifest_uri = write_artifacts(blobs, output, poster.image, time.perf_counter())["manifest_uri"]

        def from_store() -> None:
            blobs.delete_prefix("jobs/bench/exports")
            for fmt in FORMATS:
                ensure_export(blobs, manifest_uri, fmt)

        stored = [timed(from_store) for _ in range(args.runs)]

    median = statistics.median(in_memory)
    result = {
        "benchmark": "export_speed",
        "poster": {"seed": seed, "width": args.size, "height": args.size, "layers": len(poster.layers)},
        "runs": args.runs,
        "all_formats_in_memory_s": round(median, 4),
        "all_formats_in_memory_runs_s": [round(value, 4) for value in in_memory],
        "all_formats_in_memory_cpu_s": round(statistics.median(in_memory_cpu), 4),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "each_format_alone_s": {fmt: round(value, 4) for fmt, value in per_format.items()},
        "all_formats_from_blob_store_s": round(statistics.median(stored), 4),
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
