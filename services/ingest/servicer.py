"""IngestService: protos <-> JobService calls. Converts and delegates only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import json_format, timestamp_pb2

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from services.common.config import Settings
from services.common.convert import options_from_proto
from services.common.errors import InvalidInput
from services.common.jobstore import JobRecord
from services.common.status import grpc_errors
from services.common.tracing import current_trace_id, current_traceparent
from services.ingest.jobs import JobService, Submission
from services.ingest.validation import check_declared

_STATUS = {
    "queued": job_pb2.JOB_STATUS_QUEUED,
    "running": job_pb2.JOB_STATUS_RUNNING,
    "succeeded": job_pb2.JOB_STATUS_SUCCEEDED,
    "failed": job_pb2.JOB_STATUS_FAILED,
    "cancelled": job_pb2.JOB_STATUS_CANCELLED,
}
_STAGE = {
    "queued": job_pb2.JOB_STAGE_QUEUED,
    "decompose": job_pb2.JOB_STAGE_DECOMPOSE,
    "matting": job_pb2.JOB_STAGE_MATTING,
    "describe": job_pb2.JOB_STAGE_DESCRIBE,
    "export": job_pb2.JOB_STAGE_EXPORT,
    "done": job_pb2.JOB_STAGE_DONE,
}


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def job_to_proto(record: JobRecord) -> job_pb2.Job:
    """The public view of a job record."""
    result = record.result
    return job_pb2.Job(
        id=record.id,
        owner=record.owner,
        batch_id=record.batch_id,
        status=_STATUS.get(record.status, job_pb2.JOB_STATUS_UNSPECIFIED),
        stage=job_pb2.JOB_STAGE_DONE if record.terminal else _STAGE.get(record.stage, job_pb2.JOB_STAGE_UNSPECIFIED),
        progress=100 if record.status == "succeeded" else record.progress,
        error=record.error,
        error_code=record.error_code,
        trace_id=record.trace_id,
        options=json_format.ParseDict(record.options, job_pb2.JobOptions()),
        source_filename=record.source_filename,
        source_sha256=record.source_sha256,
        width=record.width,
        height=record.height,
        created_at=_timestamp(record.created_at),
        updated_at=_timestamp(record.updated_at),
        result=job_pb2.JobResult(
            manifest_uri=result.get("manifest_uri", ""),
            layer_uris=[layer["uri"] for layer in result.get("layers", [])],
            export_uris=result.get("export_uris", {}),
            layer_count=result.get("layer_count", 0),
            recomposition_psnr_db=result.get("recomposition_psnr_db") or 0.0,
        ),
        parent_job_id=record.parent_job_id,
        parent_layer_id=record.parent_layer_id,
        attempts=record.attempts,
        cached_from=record.cached_from,
    )


def event_to_proto(job_id: str, event_id: str, event: dict) -> job_pb2.JobEvent:
    """A stored job event as a JobEvent."""
    return job_pb2.JobEvent(
        event_id=event_id,
        job_id=job_id,
        status=_STATUS.get(event.get("status", ""), job_pb2.JOB_STATUS_UNSPECIFIED),
        stage=_STAGE.get(event.get("stage", ""), job_pb2.JOB_STAGE_UNSPECIFIED),
        progress=int(event.get("progress", 0)),
        message=event.get("message", ""),
        time=_timestamp(float(event.get("time", 0.0))),
    )


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Accepts uploads as jobs and reports on them."""

    def __init__(self, jobs: JobService, settings: Settings) -> None:
        self._jobs = jobs
        self._settings = settings

    @grpc_errors
    async def SubmitJob(
        self, request_iterator: AsyncIterator[ingest_pb2.SubmitJobRequest], context: grpc.aio.ServicerContext
    ) -> ingest_pb2.SubmitJobResponse:
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise InvalidInput("the first SubmitJob message must carry the metadata (filename, options)")
        meta = first.metadata
        limits = self._jobs.limits
        check_declared(meta.filename, meta.size_bytes or None, limits)  # 0: not declared
        options_from_proto(meta.options, self._settings)  # rejects bad options before any bytes are stored
        data = bytearray()
        async for message in request_iterator:
            if message.WhichOneof("payload") != "chunk":
                raise InvalidInput("only file chunks may follow the metadata")
            data += message.chunk
            if len(data) > limits.max_bytes:
                raise InvalidInput(
                    f"upload is over {limits.max_bytes} bytes ({limits.max_bytes / 2**20:.1f} MiB): send a smaller file"
                )
        submission = Submission(
            filename=meta.filename,
            owner=meta.owner,
            batch_id=meta.batch_id,
            idempotency_key=meta.idempotency_key,
            options=json_format.MessageToDict(meta.options),
        )
        submitted = await self._jobs.submit(submission, bytes(data), current_traceparent(), current_trace_id())
        return ingest_pb2.SubmitJobResponse(job=job_to_proto(submitted.job), replayed=submitted.replayed)

    @grpc_errors
    async def GetJob(
        self, request: ingest_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.GetJobResponse:
        return ingest_pb2.GetJobResponse(job=job_to_proto(await self._jobs.get(request.job_id, request.owner)))

    @grpc_errors
    async def WatchJob(
        self, request: ingest_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.WatchJobResponse]:
        async for event_id, event in self._jobs.watch(request.job_id, request.owner, request.after_event_id):
            yield ingest_pb2.WatchJobResponse(event=event_to_proto(request.job_id, event_id, event))

    @grpc_errors
    async def CancelJob(
        self, request: ingest_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.CancelJobResponse:
        return ingest_pb2.CancelJobResponse(job=job_to_proto(await self._jobs.cancel(request.job_id, request.owner)))

    @grpc_errors
    async def DecomposeLayer(
        self, request: ingest_pb2.DecomposeLayerRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.DecomposeLayerResponse:
        if request.HasField("options"):
            options_from_proto(request.options, self._settings)
        record = await self._jobs.decompose_layer(
            request.job_id,
            request.layer_id,
            request.owner,
            json_format.MessageToDict(request.options) if request.HasField("options") else {},
            current_traceparent(),
            current_trace_id(),
        )
        return ingest_pb2.DecomposeLayerResponse(job=job_to_proto(record))
