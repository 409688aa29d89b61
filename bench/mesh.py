"""Mesh overhead and layer-streaming throughput; prints JSON.

1. The same poster through the whole mesh (SubmitJob to succeeded: gRPC, Redis, blob store,
   pipelined stages) vs. the same work called in-process (engine, matting, describer,
   artifacts) in this process. Target: mesh overhead at most 10% of job time on ~1 MP.
2. Layers streamed through the real Decompose path (GrpcServer with its interceptors, the
   servicer, the tensor codec, reassembly with every check) vs. a bare grpc.aio stream of
   the same arrays as raw 1 MiB bytes messages (no protobuf, no headers, no checks, no
   interceptors) that the receiver reassembles into arrays, both on loopback in this
   process. The bare stream copies each array out and back in once, the least any transport
   of these layers does. Throughput runs from the first layer byte to the last in both
   arms; the ratio including the call's set-up is reported beside it. Target: at least 85%
   of the bare throughput.

Usage: python -m bench.mesh [--runs 3] [--poster samples/poster.png] [--layers 10] [--size 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np

from poster.v1 import decompose_pb2, ingest_pb2, ingest_pb2_grpc, job_pb2
from services.common.blobstore import BlobStore
from services.common.channels import Stub, channel
from services.common.config import Settings
from services.common.images import decode_rgb, encode_png
from services.common.layers import BBox, Layer, LayerKind
from services.common.options import JobOptions
from services.common.server import GrpcServer, bind
from services.common.tensors import MAX_CHUNK_BYTES, LayerAssembler
from services.decompose.engines.classic import ClassicEngine
from services.decompose.servicer import DecomposeServicer
from services.describe.local import LocalDescriber
from services.ingest.artifacts import JobOutput, write_artifacts
from services.matting.refine import LayerRefiner
from services.mesh import LocalMesh


async def in_process_job(engine: ClassicEngine, image: np.ndarray, blobs: BlobStore, settings: Settings) -> float:
    """Engine, matting, describer and artifacts, called directly; returns seconds."""
    started = time.perf_counter()
    height, width = image.shape[:2]
    refiner = LayerRefiner(image, settings.matting_defaults)
    describer = LocalDescriber()
    layers = []
    for layer in engine.decompose(image, JobOptions(), lambda *_: None, lambda: False):
        refined = refiner.refine(layer)
        described = await describer.describe(refined, width, height)
        refined.name, refined.description = described.name, described.description
        layers.append(refined)
    output = JobOutput("inprocess", width, height, "poster.png", "0" * 64, engine.name, engine.version, "", layers)
    write_artifacts(blobs, output, image, started)
    return time.perf_counter() - started


async def mesh_job(stub: ingest_pb2_grpc.IngestServiceStub, data: bytes) -> float:
    """SubmitJob to succeeded through the mesh; returns seconds."""

    async def upload() -> AsyncIterator[ingest_pb2.SubmitJobRequest]:
        yield ingest_pb2.SubmitJobRequest(metadata=ingest_pb2.SubmitJobMetadata(filename="poster.png"))
        for offset in range(0, len(data), 256 * 1024):
            yield ingest_pb2.SubmitJobRequest(chunk=data[offset : offset + 256 * 1024])

    started = time.perf_counter()
    job = (await stub.SubmitJob(upload())).job
    async for response in stub.WatchJob(ingest_pb2.WatchJobRequest(job_id=job.id)):
        status = response.event.status
    if status != job_pb2.JOB_STATUS_SUCCEEDED:
        raise RuntimeError(f"mesh job ended {job_pb2.JobStatus.Name(status)}")
    return time.perf_counter() - started


async def bench_mesh(poster: Path, runs: int) -> dict:
    data = poster.read_bytes()
    image = decode_rgb(data)
    with tempfile.TemporaryDirectory() as blob_dir:
        settings = Settings(blob_root=f"file://{blob_dir}", result_cache_enabled=False)  # every job runs
        blobs = BlobStore(settings.blob_root)
        engine = ClassicEngine()
        async with LocalMesh(settings) as mesh, channel(mesh.ingest_target, settings) as open_channel:
            stub = ingest_pb2_grpc.IngestServiceStub(open_channel)
            await in_process_job(engine, image, blobs, settings)  # warm-ups: model loads, caches
            await mesh_job(stub, data)
            reference, through_mesh = [], []
            for _ in range(runs):  # interleaved, so load drift affects both alike
                reference.append(await in_process_job(engine, image, blobs, settings))
                through_mesh.append(await mesh_job(stub, data))
            redis = mesh.redis.description
    mesh_s, reference_s = statistics.median(through_mesh), statistics.median(reference)
    overhead = (mesh_s - reference_s) / mesh_s
    return {
        "poster": str(poster),
        "megapixels": round(image.shape[0] * image.shape[1] / 1e6, 3),
        "redis": redis,
        "runs": runs,
        "mesh_job_s": [round(value, 3) for value in through_mesh],
        "in_process_job_s": [round(value, 3) for value in reference],
        "mesh_job_s_median": round(mesh_s, 3),
        "in_process_job_s_median": round(reference_s, 3),
        "mesh_overhead_fraction": round(overhead, 4),
        "target_overhead_fraction_max": 0.10,
        "meets_target": overhead <= 0.10,
    }


class ReplayEngine:
    """Yields prepared layers, so the streaming benchmark measures transport, not decomposition."""

    name = "replay"
    version = "bench"

    def __init__(self, layers: list[Layer]) -> None:
        self._layers = layers

    def decompose(self, image, options, on_progress, is_cancelled) -> Iterator[Layer]:
        yield from self._layers


class ReplayRegistry:
    def __init__(self, engine: ReplayEngine) -> None:
        self._engine = engine

    def get(self, name: str) -> ReplayEngine:
        return self._engine


async def bench_streaming(layer_count: int, size: int, runs: int) -> dict:
    settings = Settings()
    rng = np.random.default_rng(0)
    layers = [
        Layer(i, LayerKind.SHAPE, BBox(0, 0, size, size), rng.integers(0, 256, (size, size, 4), dtype=np.uint8))
        for i in range(layer_count)
    ]
    total_bytes = layer_count * size * size * 4
    with tempfile.TemporaryDirectory() as blob_dir:
        blobs = BlobStore(f"file://{blob_dir}")
        tiny = blobs.put("tiny.png", _png(size))
        servicer = DecomposeServicer(ReplayRegistry(ReplayEngine(layers)), blobs, settings)  # type: ignore[arg-type]
        service = decompose_pb2.DESCRIPTOR.services_by_name["DecomposeService"]
        layered = GrpcServer([bind(service, servicer)], settings, "127.0.0.1", 0)
        await layered.start()
        bare = await _bare_server(layers)
        try:
            async with (
                channel(layered.target, settings) as layered_channel,
                grpc.aio.insecure_channel(
                    f"127.0.0.1:{bare[1]}", options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)]
                ) as bare_channel,
            ):
                stub = Stub(layered_channel, service)
                bare_call = bare_channel.unary_stream("/bench.Bare/Stream")
                await _layer_stream(stub, tiny, size, total_bytes)
                await _bare_stream(bare_call, size * size * 4, total_bytes)
                layer_runs, bare_runs = [], []
                for _ in range(runs):  # interleaved, so drift affects both alike
                    layer_runs.append(await _layer_stream(stub, tiny, size, total_bytes))
                    bare_runs.append(await _bare_stream(bare_call, size * size * 4, total_bytes))
        finally:
            await layered.stop(0, drain_delay=0)
            await bare[0].stop(0)
    # Throughput is first layer byte to last; with the call's set-up (the request image decoded
    # by the decompose service) it is reported too.
    layer_rate = total_bytes / statistics.median(run[1] for run in layer_runs) / 2**20
    bare_rate = total_bytes / statistics.median(run[1] for run in bare_runs) / 2**20
    layer_call = total_bytes / statistics.median(run[0] for run in layer_runs) / 2**20
    bare_call = total_bytes / statistics.median(run[0] for run in bare_runs) / 2**20
    return {
        "layers": layer_count,
        "layer_shape": [size, size, 4],
        "bytes_per_run": total_bytes,
        "runs": runs,
        "bare_stream": "same arrays as raw 1 MiB grpc.aio bytes messages, reassembled by the receiver",
        "layer_stream_mib_per_s": round(layer_rate, 1),
        "bare_stream_mib_per_s": round(bare_rate, 1),
        "ratio": round(layer_rate / bare_rate, 4),
        "ratio_including_call_setup": round(layer_call / bare_call, 4),
        "target_ratio_min": 0.85,
        "meets_target": layer_rate / bare_rate >= 0.85,
    }


def _png(size: int) -> bytes:
    return encode_png(np.full((size, size, 3), 255, np.uint8))


async def _layer_stream(stub: Stub, uri: str, size: int, expected: int) -> tuple[float, float]:
    """Seconds from the call and from the first layer byte to the last; asserts every byte arrived."""
    called = time.perf_counter()
    first = 0.0
    assembler = LayerAssembler(size, size, size * size * 4)
    received = 0
    async for frame in stub.Decompose(decompose_pb2.DecomposeRequest(image_uri=uri)):
        if frame.WhichOneof("frame") in ("header", "chunk"):
            first = first or time.perf_counter()
            if (layer := assembler.feed(frame)) is not None:
                received += layer.rgba.nbytes
    assert received == expected, (received, expected)
    done = time.perf_counter()
    return done - called, done - first


async def _bare_server(layers: list[Layer]) -> tuple[grpc.aio.Server, int]:
    """Streams the same arrays as raw 1 MiB bytes messages: no protobuf, no headers, no checks."""

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for layer in layers:
            raw = memoryview(np.ascontiguousarray(layer.rgba)).cast("B")
            for offset in range(0, len(raw), MAX_CHUNK_BYTES):
                yield bytes(raw[offset : offset + MAX_CHUNK_BYTES])

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Bare", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _bare_stream(call: grpc.aio.UnaryStreamMultiCallable, layer_bytes: int, expected: int) -> tuple[float, float]:
    """Receives the raw stream and reassembles each layer's bytes into an array, as any receiver must."""
    called = time.perf_counter()
    first = 0.0
    received, filled = 0, 0
    buffer = bytearray(layer_bytes)
    async for message in call(b""):
        first = first or time.perf_counter()
        buffer[filled : filled + len(message)] = message
        filled += len(message)
        if filled == layer_bytes:
            received += np.frombuffer(buffer, np.uint8).nbytes
            buffer, filled = bytearray(layer_bytes), 0
    assert received == expected
    done = time.perf_counter()
    return done - called, done - first


async def main_async(args: argparse.Namespace) -> dict:
    return {
        "benchmark": "mesh",
        "machine_cores": os.cpu_count(),
        "mesh_overhead": await bench_mesh(args.poster, args.runs),
        "layer_streaming": await bench_streaming(args.layers, args.size, args.runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--poster", type=Path, default=Path("samples/poster.png"))
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024)
    json.dump(asyncio.run(main_async(parser.parse_args())), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
