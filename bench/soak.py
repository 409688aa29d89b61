"""Soak: jobs at a fixed rate for a fixed time through the whole mesh (classic engine); prints JSON.

Everything runs on loopback: the four gRPC services and the runners in this process, a private
redis-server beside it. Jobs are submitted through ingest's SubmitJob at `--rate` per second for
`--duration` seconds, each watched to its end; then the bench waits up to `--drain` seconds for the
rest. It reports jobs completed, failed and lost (submitted but never ended: must be 0), p50/p99
latency from submit to the final event, queue depth sampled every second, and the resident memory
of this process and of redis-server: peak, at the end of the warm-up, and the growth after it.

Usage: python -m bench.soak [--duration 60] [--rate 0.4] [--warmup 45] [--drain 120] [--runners 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from samples.synthetic import make_poster
from services.assembly import job_queue
from services.common.channels import channel
from services.common.config import Settings
from services.common.images import encode_png
from services.mesh import LocalMesh

_ENDS = {
    job_pb2.JOB_STATUS_SUCCEEDED: "completed",
    job_pb2.JOB_STATUS_FAILED: "failed",
    job_pb2.JOB_STATUS_CANCELLED: "cancelled",
}


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process in MiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Samples:
    """What the sampler saw, one entry per second."""

    times: list[float] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    redis_rss: list[float] = field(default_factory=list)


def memory_report(times: list[float], values: list[float], warmup_s: float) -> dict[str, object]:
    """Peak, value at the end of the warm-up, growth of the peak after it, and the series (MiB)."""
    warm = [value for when, value in zip(times, values, strict=True) if when <= warmup_s] or values[:1]
    after = [value for when, value in zip(times, values, strict=True) if when > warmup_s] or values[-1:]
    return {
        "peak_mb": round(max(values), 1),
        "after_warmup_mb": round(warm[-1], 1),
        "growth_after_warmup_mb": round(max(after) - warm[-1], 1),
        "every_5s_mb": [round(value) for value in values[::5]],
    }


async def soak(args: argparse.Namespace) -> dict:
    """Runs the soak and returns the report."""
    posters = [encode_png(make_poster(seed, width=args.width, height=args.height).image) for seed in range(8)]
    with tempfile.TemporaryDirectory(prefix="poster-soak-") as blobs:
        # Cache off: every job must run, not copy the result of an earlier job on the same poster.
        settings = Settings(
            redis_url="", blob_root=f"file://{blobs}", default_engine="classic", result_cache_enabled=False
        )
        async with LocalMesh(settings, runners=args.runners) as mesh, channel(mesh.ingest_target, settings) as chan:
            assert mesh.redis is not None and mesh.redis.process is not None, "the soak needs redis-server on PATH"
            redis_pid = int((await mesh.redis.client.info("server"))["process_id"])
            ingest = ingest_pb2_grpc.IngestServiceStub(chan)
            queue = job_queue(mesh.redis.client, settings)
            outcomes: dict[str, str] = {}
            latencies: list[float] = []
            samples = Samples()
            started = time.monotonic()

            async def one_job(index: int) -> None:
                data = posters[index % len(posters)]
                submitted = time.monotonic()
                job = (await ingest.SubmitJob(_upload(data), timeout=60)).job
                outcomes[job.id] = "running"
                watch = ingest_pb2.WatchJobRequest(job_id=job.id)
                async for response in ingest.WatchJob(watch, timeout=args.duration + args.drain):
                    if response.event.status in _ENDS:
                        outcomes[job.id] = _ENDS[response.event.status]
                        latencies.append(time.monotonic() - submitted)

            async def sample(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    samples.times.append(time.monotonic() - started)
                    samples.depth.append((await queue.depth()).total)
                    samples.rss.append(rss_mb())
                    samples.redis_rss.append(rss_mb(redis_pid))
                    await asyncio.sleep(1.0)

            stop_sampling = asyncio.Event()
            sampler = asyncio.create_task(sample(stop_sampling))
            jobs: list[asyncio.Task[None]] = []
            interval = 1.0 / args.rate
            for index in range(int(args.duration * args.rate)):
                # A fixed schedule, not a fixed gap: a slow submit does not lower the rate.
                await asyncio.sleep(max(0.0, started + index * interval - time.monotonic()))
                jobs.append(asyncio.create_task(one_job(index)))
            submitted_for = time.monotonic() - started
            done, pending = await asyncio.wait(jobs, timeout=args.drain)
            for task in pending:
                task.cancel()
            errors = [str(task.exception()) for task in done if not task.cancelled() and task.exception()]
            stop_sampling.set()
            await sampler
    counts = {name: sum(1 for value in outcomes.values() if value == name) for name in (*_ENDS.values(), "running")}
    ordered = sorted(latencies)
    return {
        "duration_s": args.duration,
        "rate_per_s": args.rate,
        "poster": f"{args.width}x{args.height}",
        "runners": args.runners,
        "submitted": len(jobs),
        "submitting_took_s": round(submitted_for, 1),
        "completed": counts["completed"],
        "failed": counts["failed"],
        "cancelled": counts["cancelled"],
        # Never acknowledged by SubmitJob, or not ended by the end of the drain.
        "lost": len(jobs) - len(outcomes) + counts["running"],
        "client_errors": errors[:5],
        "latency_s": {
            "p50": round(statistics.median(ordered), 2) if ordered else None,
            "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2) if ordered else None,
            "max": round(ordered[-1], 2) if ordered else None,
        },
        "queue_depth": {
            "max": max(samples.depth, default=0),
            "every_5s": samples.depth[::5],
        },
        "memory": {
            "soak_process": memory_report(samples.times, samples.rss, args.warmup),
            "redis_server": memory_report(samples.times, samples.redis_rss, args.warmup),
        },
    }


async def _upload(data: bytes) -> AsyncIterator[ingest_pb2.SubmitJobRequest]:
    yield ingest_pb2.SubmitJobRequest(metadata=ingest_pb2.SubmitJobMetadata(filename="soak.png", size_bytes=len(data)))
    for offset in range(0, len(data), 1 << 20):
        yield ingest_pb2.SubmitJobRequest(chunk=data[offset : offset + (1 << 20)])


def main(argv: list[str] | None = None) -> int:
    """Command line entry; exits 1 when a job was lost or failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of submissions")
    parser.add_argument("--rate", type=float, default=0.4, help="jobs submitted per second")
    parser.add_argument("--warmup", type=float, default=45.0, help="seconds before memory growth is measured")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the last jobs")
    parser.add_argument("--runners", type=int, default=1)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=640)
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args))
    json.dump(report, sys.stdout, indent=2)
    print()
    return 1 if report["lost"] or report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
