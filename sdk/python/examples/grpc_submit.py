"""An internal caller: upload a poster to ingest over gRPC, follow its events, print the finished job.

    python examples/grpc_submit.py 127.0.0.1:50051 poster.png [--owner team-a] [--layers 4]

Needs the `grpc` extra. The mesh's internal token, when it has one, comes from POSTER_INTERNAL_TOKEN.
Prints one JSON line per event, then the job (its manifest is at `manifest_uri` in the shared blob store).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import grpc
from poster_layers_client.grpc import call_metadata, submit_requests
from poster_layers_client.grpc.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2


def _name(enum: type, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()  # type: ignore[attr-defined]


async def run(target: str, image: Path, owner: str, layers: int, token: str | None) -> int:
    """Submits `image`, prints its events and the final job; 0 when it succeeded."""
    metadata = call_metadata(token)
    async with grpc.aio.insecure_channel(target) as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        requests = submit_requests(image.read_bytes(), image.name, job_pb2.JobOptions(layers=layers), owner=owner)
        try:
            job = (await ingest.SubmitJob(requests, metadata=metadata, timeout=60)).job
        except grpc.aio.AioRpcError as error:
            print(f"{image}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
        watch = ingest_pb2.WatchJobRequest(job_id=job.id, owner=owner)
        async for response in ingest.WatchJob(watch, metadata=metadata, timeout=600):
            event = response.event
            print(
                json.dumps(
                    {
                        "event_id": event.event_id,
                        "status": _name(job_pb2.JobStatus, event.status, "JOB_STATUS_"),
                        "stage": _name(job_pb2.JobStage, event.stage, "JOB_STAGE_"),
                        "progress": event.progress,
                    }
                ),
                flush=True,
            )
        request = ingest_pb2.GetJobRequest(job_id=job.id, owner=owner)
        job = (await ingest.GetJob(request, metadata=metadata, timeout=30)).job
    status = _name(job_pb2.JobStatus, job.status, "JOB_STATUS_")
    print(json.dumps({"job_id": job.id, "status": status, "manifest_uri": job.result.manifest_uri, "error": job.error}))
    return 0 if job.status == job_pb2.JOB_STATUS_SUCCEEDED else 1


def main(argv: list[str] | None = None) -> int:
    """Command line: TARGET IMAGE [--owner] [--layers]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="ingest's host:port")
    parser.add_argument("image", type=Path)
    parser.add_argument("--owner", default="", help="the owner the job belongs to")
    parser.add_argument("--layers", type=int, default=0, help="layer count; 0 = auto")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.target, args.image, args.owner, args.layers, os.environ.get("POSTER_INTERNAL_TOKEN")))


if __name__ == "__main__":
    sys.exit(main())
