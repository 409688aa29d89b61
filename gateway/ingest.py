"""The gateway's client of IngestService: every call with a deadline, gRPC errors as GatewayErrors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.errors import from_grpc
from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from services.common.config import Settings

UPLOAD_CHUNK = 256 * 1024
Reader = Callable[[int], Awaitable[bytes]]


async def _upload(metadata: ingest_pb2.SubmitJobMetadata, read: Reader) -> AsyncIterator[ingest_pb2.SubmitJobRequest]:
    yield ingest_pb2.SubmitJobRequest(metadata=metadata)
    while chunk := await read(UPLOAD_CHUNK):
        yield ingest_pb2.SubmitJobRequest(chunk=chunk)


class IngestClient:
    """Calls ingest on `channel`; the channel belongs to the caller."""

    def __init__(self, channel: grpc.aio.Channel, settings: Settings) -> None:
        self._stub = ingest_pb2_grpc.IngestServiceStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)
        self._timeout = settings.gateway_call_timeout_s
        self._upload_timeout = settings.gateway_upload_timeout_s
        # A watch lasts as long as a job may; a client that outlives it reconnects with Last-Event-ID.
        self._watch_timeout = settings.job_timeout_s + 60

    async def submit(self, metadata: ingest_pb2.SubmitJobMetadata, read: Reader) -> ingest_pb2.SubmitJobResponse:
        """Streams one upload (metadata, then `read(n)` chunks until b"") and returns the job and whether its
        idempotency key had made it already (replayed)."""
        try:
            return await self._stub.SubmitJob(_upload(metadata, read), timeout=self._upload_timeout)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None

    async def get(self, job_id: str, owner: str) -> job_pb2.Job:
        """The job, if `owner` owns it (404 otherwise)."""
        try:
            request = ingest_pb2.GetJobRequest(job_id=job_id, owner=owner)
            return (await self._stub.GetJob(request, timeout=self._timeout)).job
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None

    async def watch(self, job_id: str, owner: str, after_event_id: str) -> AsyncIterator[job_pb2.JobEvent]:
        """The job's events after `after_event_id` ("" = from the start) until it ends."""
        request = ingest_pb2.WatchJobRequest(job_id=job_id, owner=owner, after_event_id=after_event_id)
        call = self._stub.WatchJob(request, timeout=self._watch_timeout)
        try:
            async for response in call:
                yield response.event
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        finally:
            call.cancel()

    async def cancel(self, job_id: str, owner: str) -> job_pb2.Job:
        """Asks for the job to be cancelled; returns it as it is now."""
        try:
            request = ingest_pb2.CancelJobRequest(job_id=job_id, owner=owner)
            return (await self._stub.CancelJob(request, timeout=self._timeout)).job
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None

    async def decompose_layer(
        self, job_id: str, layer_id: str, owner: str, options: job_pb2.JobOptions | None
    ) -> job_pb2.Job:
        """Queues a child job that decomposes one layer of a finished job again."""
        request = ingest_pb2.DecomposeLayerRequest(job_id=job_id, layer_id=layer_id, owner=owner)
        if options is not None:
            request.options.CopyFrom(options)
        try:
            return (await self._stub.DecomposeLayer(request, timeout=self._timeout)).job
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None

    async def serving(self) -> bool:
        """Whether ingest answers its health check with SERVING."""
        try:
            reply = await self._health.Check(
                health_pb2.HealthCheckRequest(service="poster.v1.IngestService"), timeout=2.0
            )
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING
