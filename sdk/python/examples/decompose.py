"""Decompose a poster through a running gateway: submit it, follow its progress, download the results.

    python examples/decompose.py poster.png out/ [--url http://127.0.0.1:8080]

The API key, when the gateway needs one, comes from POSTER_API_KEY.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from poster_layers_client import ApiError, Client, Progress


def show(progress: Progress) -> None:
    """Prints one progress event."""
    print(f"{progress.stage:<10} {progress.progress:3d}%  {progress.message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Submits IMAGE, waits for it, and writes its ZIP and PSD into OUTDIR."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--layers", default="auto", help="'auto' or a layer count")
    args = parser.parse_args(argv)

    with Client(args.url, api_key=os.environ.get("POSTER_API_KEY")) as client:
        try:
            job = client.submit(args.image, layers=args.layers, formats=["psd", "zip"])
        except ApiError as error:
            print(f"{args.image}: refused ({error.status} {error.code}): {error.detail}", file=sys.stderr)
            return 1
        job = client.wait(job.id, on_progress=show)
        if not job.succeeded:
            print(f"{args.image}: {job.status}: {job.error}", file=sys.stderr)
            return 1
        args.outdir.mkdir(parents=True, exist_ok=True)
        for fmt in ("zip", "psd"):
            print(client.download(job.id, fmt, args.outdir))
        for layer in job.layers:
            print(f"{layer.index:2d}  {layer.kind:<10}  {layer.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
