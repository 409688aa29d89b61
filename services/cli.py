"""poster-layers: decompose posters through the mesh, run the mesh, or serve one service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry import trace
from tqdm import tqdm

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from services.assembly import SERVICES, build_service, job_runner
from services.batch_inputs import Input, expand_inputs, output_dirs
from services.batches import ensure_zip_exports, job_state, write_results_zip
from services.common.blobstore import BlobStore
from services.common.channels import channel
from services.common.config import Settings
from services.common.convert import options_to_proto
from services.common.errors import InvalidInput
from services.common.logging import setup_logging
from services.common.options import JobOptions
from services.common.redis_client import redis_from_url
from services.common.server import serve
from services.common.tracing import setup_tracing
from services.common.zip_batch import ZipLimits
from services.exports import FORMATS
from services.mesh import LocalMesh

UPLOAD_CHUNK = 256 * 1024
# Inputs read and being uploaded at once: each one is in memory (up to the upload byte limit) meanwhile.
UPLOADS_IN_FLIGHT = 4
tracer = trace.get_tracer("poster.cli")


def _layers(value: str) -> int:
    if value == "auto":
        return 0
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes a number or 'auto', not {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError("--layers must be at least 1 (or 'auto')")
    return count


def _formats(value: str) -> tuple[str, ...]:
    names = FORMATS if value == "all" else tuple(dict.fromkeys(part.strip().lower() for part in value.split(",")))
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(unknown)}; use {', '.join(FORMATS)} or all")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="poster-layers", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the services do")
    commands = parser.add_subparsers(dest="command", required=True)

    decompose = commands.add_parser("decompose", help="decompose posters into layers through the local mesh")
    decompose.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT", help="PNG, JPEG or WebP files, or ZIPs of them"
    )
    decompose.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR")
    decompose.add_argument("--layers", type=_layers, default=0, metavar="N|auto", help="layer count (default auto)")
    decompose.add_argument("--engine", choices=["auto", "classic", "qwen"], default="auto")
    decompose.add_argument(
        "--format",
        dest="formats",
        type=_formats,
        default=(),
        metavar="psd,pptx,svg,zip|all",
        help="also write these exports to OUTDIR/exports/",
    )
    decompose.add_argument(
        "--no-cache",
        action="store_true",
        help="decompose even if the result cache holds the result (kept only with REDIS_URL and POSTER_BLOB_ROOT set)",
    )

    up = commands.add_parser("up", help="run every service, the job runner, and the gateway with the web app")
    up.add_argument("--host", default="127.0.0.1", help="address the gRPC services and the gateway bind")
    up.add_argument("--port", type=int, default=None, help="gateway port (default: POSTER_GATEWAY_PORT, 8080)")

    serve_one = commands.add_parser("serve", help="run one service, as a container does")
    serve_one.add_argument("service", choices=[*SERVICES, "runner"])
    return parser


async def _upload(
    filename: str, data: bytes, options: job_pb2.JobOptions, batch_id: str
) -> AsyncIterator[ingest_pb2.SubmitJobRequest]:
    metadata = ingest_pb2.SubmitJobMetadata(filename=filename, size_bytes=len(data), options=options, batch_id=batch_id)
    yield ingest_pb2.SubmitJobRequest(metadata=metadata)
    for offset in range(0, len(data), UPLOAD_CHUNK):
        yield ingest_pb2.SubmitJobRequest(chunk=data[offset : offset + UPLOAD_CHUNK])


def save_outputs(blobs: BlobStore, job: job_pb2.Job, outdir: Path) -> dict:
    """Copies a finished job's manifest, layer PNGs and exports from the blob store into `outdir`."""
    manifest = json.loads(blobs.get(job.result.manifest_uri))
    base = job.result.manifest_uri.rsplit("/", 1)[0]
    (outdir / "layers").mkdir(parents=True, exist_ok=True)
    for layer in manifest["layers"]:
        (outdir / layer["file"]).write_bytes(blobs.get(f"{base}/{layer['file']}"))
    for relative in manifest["exports"].values():
        (outdir / relative).parent.mkdir(parents=True, exist_ok=True)
        (outdir / relative).write_bytes(blobs.get(f"{base}/{relative}"))
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


@dataclass
class BatchRun:
    """The jobs of one run as a batch: its id ("" for a single image), a gate on uploads, and its n of m."""

    batch_id: str
    total: int
    done: int = 0
    rejected: list[dict] = field(default_factory=list)  # submissions ingest refused, for batch.json
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(UPLOADS_IN_FLIGHT))

    def ended(self) -> None:
        """Counts one job as done (in any way) and says so for a batch."""
        self.done += 1
        if self.batch_id:
            tqdm.write(f"batch: {self.done}/{self.total} done")


async def _submit(
    stub: ingest_pb2_grpc.IngestServiceStub, item: Input, options: job_pb2.JobOptions, run: BatchRun
) -> job_pb2.Job | None:
    """The queued job, or None (with a message) if the input could not be read or was refused."""
    async with run.gate:
        try:
            data = await asyncio.to_thread(item.read)
            return (await stub.SubmitJob(_upload(item.filename, data, options, run.batch_id), timeout=60)).job
        except (InvalidInput, grpc.aio.AioRpcError) as error:
            detail = str(error) if isinstance(error, InvalidInput) else error.details()
            code = "invalid_input" if isinstance(error, InvalidInput) else error.code().name.lower()
    tqdm.write(f"{item.label}: rejected: {detail}", file=sys.stderr)
    run.rejected.append({"filename": item.label, "error": code, "detail": detail})
    return None


async def decompose_one(
    stub: ingest_pb2_grpc.IngestServiceStub,
    blobs: BlobStore,
    item: Input,
    outdir: Path,
    options: job_pb2.JobOptions,
    position: int,
    watch_timeout_s: float,
    run: BatchRun,
) -> job_pb2.Job | None:
    """Submits one input, shows its progress bar, writes its outputs; the job as it ended (None if refused)."""
    with tracer.start_as_current_span("poster-layers decompose", attributes={"poster.file": item.filename}):
        job = await _submit(stub, item, options, run)
        if job is None:
            run.ended()
            return None
        with tqdm(total=100, desc=item.filename, position=position, unit="%", leave=True) as bar:
            watch = ingest_pb2.WatchJobRequest(job_id=job.id)
            async for response in stub.WatchJob(watch, timeout=watch_timeout_s):
                event = response.event
                bar.set_postfix_str(job_pb2.JobStage.Name(event.stage).removeprefix("JOB_STAGE_").lower())
                bar.update(max(0, event.progress - bar.n))
            job = (await stub.GetJob(ingest_pb2.GetJobRequest(job_id=job.id), timeout=30)).job
            if job.status == job_pb2.JOB_STATUS_SUCCEEDED:
                bar.update(100 - bar.n)
    run.ended()
    if job.status != job_pb2.JOB_STATUS_SUCCEEDED:
        tqdm.write(f"{item.label}: {job_pb2.JobStatus.Name(job.status).lower()}: {job.error}", file=sys.stderr)
        return job
    manifest = await asyncio.to_thread(save_outputs, blobs, job, outdir)
    tqdm.write(
        f"{item.label} -> {outdir}: {len(manifest['layers'])} layers, quality {manifest['quality_score']}, "
        f"trace {manifest['trace_id']}"
    )
    return job


def write_batch_zip(blobs: BlobStore, path: Path, run: BatchRun, jobs: list[job_pb2.Job], rejected: list[dict]) -> None:
    """OUTDIR/batch.zip: every succeeded job's results and batch.json, as the gateway's results.zip has them."""
    states = [job_state(job) for job in jobs]
    exports = ensure_zip_exports(blobs, states)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        write_results_zip(out, blobs, run.batch_id, states, exports, [*rejected, *run.rejected])


async def run_decompose(args: argparse.Namespace, settings: Settings) -> int:
    """The main job: every input (a ZIP's images each) through the in-process mesh; 0 only if all succeeded."""
    missing = [str(path) for path in args.inputs if not path.is_file()]
    if missing:
        print(f"poster-layers: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    setup_tracing("poster-layers")
    options = options_to_proto(JobOptions(layers=args.layers, engine=args.engine, export_formats=args.formats))
    options.no_cache = args.no_cache
    with contextlib.ExitStack() as stack:
        expansion = expand_inputs(args.inputs, ZipLimits.from_settings(settings), stack)
        for line in [*expansion.refused, *expansion.skipped]:
            print(line, file=sys.stderr)
        inputs = expansion.inputs
        if not inputs:
            print("poster-layers: no image to decompose", file=sys.stderr)
            return 1
        if "blob_root" not in settings.model_fields_set:
            # The CLI's jobs are throwaway: keep their blobs in a temporary folder.
            temporary = stack.enter_context(tempfile.TemporaryDirectory(prefix="poster-layers-"))
            settings = settings.model_copy(update={"blob_root": f"file://{temporary}"})
        # Several images, or any ZIP, are one batch, with one ZIP of all results.
        run = BatchRun(secrets.token_urlsafe(12) if len(inputs) > 1 or expansion.zipped else "", len(inputs))
        async with LocalMesh(settings) as mesh:
            print(f"poster-layers: job state in {mesh.redis.description}", file=sys.stderr)
            blobs = BlobStore(settings.blob_root)
            targets = list(zip(inputs, output_dirs(inputs, args.output), strict=True))
            async with channel(mesh.ingest_target, settings) as ingest:
                stub = ingest_pb2_grpc.IngestServiceStub(ingest)
                jobs = await asyncio.gather(
                    *(
                        decompose_one(
                            stub,
                            blobs,
                            item,
                            outdir,
                            options,
                            index,
                            # A job waits in the queue behind the others, then runs within its limit.
                            settings.job_timeout_s * (len(inputs) + 1),
                            run,
                        )
                        for index, (item, outdir) in enumerate(targets)
                    )
                )
            ended = [job for job in jobs if job is not None]
            succeeded = sum(job.status == job_pb2.JOB_STATUS_SUCCEEDED for job in ended)
            if run.batch_id and succeeded:
                path = args.output / "batch.zip"
                await asyncio.to_thread(write_batch_zip, blobs, path, run, ended, expansion.rejected)
                print(f"{path}: the results of {succeeded} of {len(inputs)} jobs")
    # Skipped ZIP members are reported, not failures; a refused input or a job that did not succeed is.
    return 0 if succeeded == len(inputs) and not expansion.refused else 1


async def run_up(args: argparse.Namespace, settings: Settings) -> int:
    """Every service on its configured port plus a runner and the gateway, until Ctrl-C or SIGTERM."""
    # Imported here: only `up` needs the web stack.
    from gateway.app import create_app
    from gateway.server import start_gateway

    setup_tracing("poster-layers")
    setup_logging(settings.log_format, sentry_dsn=settings.sentry_dsn)
    port = settings.gateway_port if args.port is None else args.port
    settings = settings.model_copy(update={"grpc_host": args.host, "gateway_host": args.host, "gateway_port": port})
    stopped = _stop_on_signals()
    mesh = await LocalMesh(settings, fixed_ports=True).start()
    print(f"poster-layers up: job state in {mesh.redis.description}", file=sys.stderr)
    for name, target in mesh.targets().items():
        print(f"  {name:<10} {target}", file=sys.stderr)
    try:
        gateway = await start_gateway(create_app(settings, mesh.redis.client, mesh.ingest_target), args.host, port)
    except OSError as error:
        print(f"poster-layers up: cannot serve the gateway on {args.host}:{port}: {error}", file=sys.stderr)
        await mesh.stop()
        return 1
    print(f"poster-layers up: web app at {gateway.url}/ (API docs at {gateway.url}/docs)", file=sys.stderr)
    # uvicorn takes the signal while it serves and raises it again once stopped, which sets `stopped`.
    await asyncio.wait([gateway.task, asyncio.create_task(stopped.wait())], return_when=asyncio.FIRST_COMPLETED)
    await gateway.stop()
    await mesh.stop()
    return 0


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    return stopped


async def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """One service (or the runner) in this process, as a container runs it."""
    setup_tracing(f"poster-{args.service}")
    setup_logging(settings.log_format, sentry_dsn=settings.sentry_dsn)
    needs_redis = args.service in ("ingest", "runner")
    if needs_redis and not settings.redis_url:
        print(f"poster-layers serve {args.service}: set REDIS_URL", file=sys.stderr)
        return 2
    redis_client = redis_from_url(settings.redis_url) if needs_redis else None
    if args.service == "runner":
        assert redis_client is not None
        targets = {
            "decompose": settings.decompose_target,
            "matting": settings.matting_target,
            "describe": settings.describe_target,
        }
        runner, close = job_runner(settings, redis_client, targets)
        await runner.run(_stop_on_signals())
        await close()
        return 0
    port = getattr(settings, f"{args.service}_port")
    built = build_service(args.service, settings, port, redis_client)
    await serve(built.server, built.warm_up, background=built.background)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command != "decompose" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings()
    command = {"decompose": run_decompose, "up": run_up, "serve": run_serve}[args.command]
    return asyncio.run(command(args, settings))


if __name__ == "__main__":
    sys.exit(main())
