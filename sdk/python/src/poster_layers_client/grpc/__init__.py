"""gRPC access for internal callers (the `grpc` extra): the poster.v1 stubs and the SubmitJob upload stream.

    import grpc
    from poster_layers_client.grpc import call_metadata, submit_requests
    from poster_layers_client.grpc.v1 import ingest_pb2, ingest_pb2_grpc

    async with grpc.aio.insecure_channel("ingest:50051") as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        data = open("poster.png", "rb").read()
        job = (await ingest.SubmitJob(submit_requests(data, "poster.png"), metadata=call_metadata(token))).job
        async for response in ingest.WatchJob(ingest_pb2.WatchJobRequest(job_id=job.id), metadata=...):
            print(response.event.progress)

The stubs are the same generated code the services use (checked by scripts/check_contracts.sh),
with relative imports, so they load beside the services' own `poster.v1` in one process.
"""

from __future__ import annotations

from collections.abc import Iterator

from poster_layers_client.grpc.v1 import ingest_pb2, job_pb2

# The metadata entry every service checks when POSTER_INTERNAL_TOKEN is set (docs/security.md).
INTERNAL_TOKEN_KEY = "x-poster-internal-token"
CHUNK_BYTES = 256 * 1024


def call_metadata(internal_token: str | None = None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries the mesh's internal token (none when the mesh runs without one)."""
    return ((INTERNAL_TOKEN_KEY, internal_token),) if internal_token else ()


def submit_requests(
    data: bytes,
    filename: str,
    options: job_pb2.JobOptions | None = None,
    *,
    owner: str = "",
    idempotency_key: str = "",
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[ingest_pb2.SubmitJobRequest]:
    """The request stream of IngestService.SubmitJob: the metadata (declaring the size), then the bytes in chunks.

    `owner` scopes the job: GetJob, WatchJob and CancelJob with another owner answer NOT_FOUND.
    """
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, not {chunk_bytes}")
    metadata = ingest_pb2.SubmitJobMetadata(
        filename=filename,
        size_bytes=len(data),
        options=options or job_pb2.JobOptions(),
        owner=owner,
        idempotency_key=idempotency_key,
    )
    yield ingest_pb2.SubmitJobRequest(metadata=metadata)
    for offset in range(0, len(data), chunk_bytes):
        yield ingest_pb2.SubmitJobRequest(chunk=data[offset : offset + chunk_bytes])
