"""Result cache: SubmitJob to succeeded for a cache hit vs. a full run of the same poster; prints JSON.

Both arms go through the whole in-process mesh (gRPC, Redis, blob store) with the same poster and
options; the full run sets no_cache so it decomposes every time, the hit copies the stored result.
Runs are interleaved so load drift on a shared machine affects both alike; medians are reported.
`--formats` asks both arms for exports (a hit copies or builds them from the stored layers).

Usage: python -m bench.result_cache [--runs 5] [--poster samples/poster.png] [--formats psd,zip]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from services.common.channels import channel
from services.common.config import Settings
from services.common.convert import EXPORT_FORMATS
from services.mesh import LocalMesh

FORMAT_VALUES = {name: value for value, name in EXPORT_FORMATS.items()}


async def timed_job(stub: ingest_pb2_grpc.IngestServiceStub, data: bytes, options: job_pb2.JobOptions) -> tuple:
    """(seconds from SubmitJob to the succeeded event, the job as submitted)."""

    async def upload() -> AsyncIterator[ingest_pb2.SubmitJobRequest]:
        metadata = ingest_pb2.SubmitJobMetadata(filename="poster.png", size_bytes=len(data), options=options)
        yield ingest_pb2.SubmitJobRequest(metadata=metadata)
        for offset in range(0, len(data), 256 * 1024):
            yield ingest_pb2.SubmitJobRequest(chunk=data[offset : offset + 256 * 1024])

    started = time.perf_counter()
    job = (await stub.SubmitJob(upload())).job
    async for response in stub.WatchJob(ingest_pb2.WatchJobRequest(job_id=job.id)):
        status = response.event.status
    if status != job_pb2.JOB_STATUS_SUCCEEDED:
        raise RuntimeError(f"job ended {job_pb2.JobStatus.Name(status)}")
    return time.perf_counter() - started, job


async def bench(poster: Path, runs: int, formats: list[str]) -> dict:
    data = poster.read_bytes()
    options = job_pb2.JobOptions(engine=job_pb2.ENGINE_CLASSIC, export_formats=[FORMAT_VALUES[f] for f in formats])
    uncached = job_pb2.JobOptions()
    uncached.CopyFrom(options)
    uncached.no_cache = True
    with tempfile.TemporaryDirectory() as blob_dir:
        settings = Settings(redis_url="", blob_root=f"file://{blob_dir}", result_cache_enabled=True)
        async with LocalMesh(settings) as mesh, channel(mesh.ingest_target, settings) as open_channel:
            stub = ingest_pb2_grpc.IngestServiceStub(open_channel)
            await timed_job(stub, data, options)  # warm-up, and the entry the hits copy
            full, hit = [], []
            for _ in range(runs):
                full.append((await timed_job(stub, data, uncached))[0])
                seconds, job = await timed_job(stub, data, options)
                if not job.cached_from:
                    raise RuntimeError("the second arm was not served from the result cache")
                hit.append(seconds)
    full_s, hit_s = statistics.median(full), statistics.median(hit)
    return {
        "poster": str(poster),
        "formats": formats,
        "runs": runs,
        "full_run_s": [round(value, 3) for value in full],
        "cache_hit_s": [round(value, 3) for value in hit],
        "full_run_s_median": round(full_s, 3),
        "cache_hit_s_median": round(hit_s, 3),
        "hit_over_full": round(hit_s / full_s, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--poster", type=Path, default=Path("samples/poster.png"))
    parser.add_argument("--formats", default="", help="comma-separated export formats for both arms")
    args = parser.parse_args()
    formats = [name for name in args.formats.split(",") if name]
    print(json.dumps(asyncio.run(bench(args.poster, args.runs, formats)), indent=2))


if __name__ == "__main__":
    main()
