"""poster-layers: decompose posters through the mesh, run the mesh, or serve one service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from opentelemetry import trace
from tqdm import tqdm

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from services.assembly import SERVICES, build_service, job_runner
from services.common.blobstore import BlobStore
from services.common.channels import channel
from services.common.config import Settings
from services.common.convert import options_to_proto
from services.common.logging import setup_logging
from services.common.options import JobOptions
from services.common.redis_client import redis_from_url
from services.common.server import serve
from services.common.tracing import setup_tracing
from services.exports import FORMATS
from services.mesh import LocalMesh

UPLOAD_CHUNK = 256 * 1024
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
    decompose.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="PNG, JPEG or WebP files")
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

    up = commands.add_parser("up", help="run every service, the job runner, and the gateway with the web app")
    up.add_argument("--host", default="127.0.0.1", help="address the gRPC services and the gateway bind")
    up.add_argument("--port", type=int, default=None, help="gateway port (default: POSTER_GATEWAY_PORT, 8080)")

    serve_one = commands.add_parser("serve", help="run one service, as a container does")
    serve_one.add_argument("service", choices=[*SERVICES, "runner"])
    return parser


async def _upload(path: Path, options: job_pb2.JobOptions) -> AsyncIterator[ingest_pb2.SubmitJobRequest]:
    data = path.read_bytes()
    metadata = ingest_pb2.SubmitJobMetadata(filename=path.name, size_bytes=len(data), options=options)
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


async def decompose_one(
    stub: ingest_pb2_grpc.IngestServiceStub,
    blobs: BlobStore,
    path: Path,
    outdir: Path,
    options: job_pb2.JobOptions,
    position: int,
    watch_timeout_s: float,
) -> bool:
    """Submits one file, shows its progress bar, writes its outputs; False (with a message) if it failed."""
    with tracer.start_as_current_span("poster-layers decompose", attributes={"poster.file": path.name}):
        try:
            job = (await stub.SubmitJob(_upload(path, options), timeout=60)).job
        except grpc.aio.AioRpcError as error:
            tqdm.write(f"{path}: rejected: {error.details()}", file=sys.stderr)
            return False
        with tqdm(total=100, desc=path.name, position=position, unit="%", leave=True) as bar:
            watch = ingest_pb2.WatchJobRequest(job_id=job.id)
            async for response in stub.WatchJob(watch, timeout=watch_timeout_s):
                event = response.event
                bar.set_postfix_str(job_pb2.JobStage.Name(event.stage).removeprefix("JOB_STAGE_").lower())
                bar.update(max(0, event.progress - bar.n))
            job = (await stub.GetJob(ingest_pb2.GetJobRequest(job_id=job.id), timeout=30)).job
            if job.status == job_pb2.JOB_STATUS_SUCCEEDED:
                bar.update(100 - bar.n)
    if job.status != job_pb2.JOB_STATUS_SUCCEEDED:
        tqdm.write(f"{path}: {job_pb2.JobStatus.Name(job.status).lower()}: {job.error}", file=sys.stderr)
        return False
    manifest = await asyncio.to_thread(save_outputs, blobs, job, outdir)
    tqdm.write(
        f"{path} -> {outdir}: {len(manifest['layers'])} layers, quality {manifest['quality_score']}, "
        f"trace {manifest['trace_id']}"
    )
    return True


async def run_decompose(args: argparse.Namespace, settings: Settings) -> int:
    """The main job: every input through the in-process mesh; exit status 0 only if all succeeded."""
    missing = [str(path) for path in args.inputs if not path.is_file()]
    if missing:
        print(f"poster-layers: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    setup_tracing("poster-layers")
    options = options_to_proto(JobOptions(layers=args.layers, engine=args.engine, export_formats=args.formats))
    with contextlib.ExitStack() as stack:
        if "blob_root" not in settings.model_fields_set:
            # The CLI's jobs are throwaway: keep their blobs in a temporary folder.
            temporary = stack.enter_context(tempfile.TemporaryDirectory(prefix="poster-layers-"))
            settings = settings.model_copy(update={"blob_root": f"file://{temporary}"})
        async with LocalMesh(settings) as mesh:
            print(f"poster-layers: job state in {mesh.redis.description}", file=sys.stderr)
            blobs = BlobStore(settings.blob_root)
            several = len(args.inputs) > 1
            async with channel(mesh.ingest_target, settings) as ingest:
                stub = ingest_pb2_grpc.IngestServiceStub(ingest)
                results = await asyncio.gather(
                    *(
                        decompose_one(
                            stub,
                            blobs,
                            path,
                            args.output / path.stem if several else args.output,
                            options,
                            index,
                            # A job waits in the queue behind the others, then runs within its limit.
                            settings.job_timeout_s * (len(args.inputs) + 1),
                        )
                        for index, path in enumerate(args.inputs)
                    )
                )
    return 0 if all(results) else 1


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
    await serve(built.server, built.warm_up)
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
