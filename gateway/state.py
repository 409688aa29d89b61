"""What the routes share: the ingest client, Redis-backed limits, caches and the blob store, and the
few steps several routes take (read a job through the cache, load a finished job's manifest)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.cache import TtlCache
from gateway.errors import GatewayError, not_found
from gateway.events import TERMINAL, status_name
from gateway.ingest import IngestClient
from gateway.limits import RateLimiter
from gateway.owners import Caller, Identifier
from gateway.quotas import MonthlyQuota
from gateway.views import job_view
from poster.v1 import job_pb2
from services.common.batchstore import BatchRecord, BatchStore
from services.common.blobstore import BlobStore
from services.common.config import Settings
from services.ingest.validation import UploadLimits

MANIFEST_TTL_S = 3600.0  # a finished job's manifest never changes; the bound only frees memory


@dataclass
class Gateway:
    """The gateway's collaborators, built once per app (see gateway.app.create_app)."""

    settings: Settings
    ingest: IngestClient
    redis: aioredis.Redis
    blobs: BlobStore
    identifier: Identifier
    limiter: RateLimiter
    quotas: MonthlyQuota
    limits: UploadLimits
    jobs: TtlCache[tuple[str, str], job_pb2.Job]
    manifests: TtlCache[str, dict]
    views: TtlCache[tuple[str, str], bytes]  # rendered status JSON of finished jobs
    batches: BatchStore

    def _job_ttl(self, job: job_pb2.Job) -> float:
        if status_name(job.status) in TERMINAL:
            return self.settings.gateway_terminal_cache_s
        return self.settings.gateway_status_cache_s

    async def job(self, caller: Caller, job_id: str) -> job_pb2.Job:
        """The caller's job (404 for anyone else's), from the cache when fresh enough."""
        return await self.jobs.get_or_load(
            (caller.owner, job_id), lambda: self.ingest.get(job_id, caller.owner), self._job_ttl
        )

    async def status_json(self, caller: Caller, job_id: str) -> bytes:
        """The job's API view as JSON; a finished job's is rendered once and kept (it never changes)."""
        body = self.views.get((caller.owner, job_id))
        if body is None:
            body = await self.render(caller, await self.job(caller, job_id))
        return body

    async def render(self, caller: Caller, job: job_pb2.Job) -> bytes:
        """The API view of a job already in hand, as JSON (kept once it finished, as status_json keeps it)."""
        body = self.views.get((caller.owner, job.id))
        if body is None:
            manifest = await self.manifest(job) if job.result.manifest_uri else None
            body = json.dumps(job_view(job, manifest), separators=(",", ":")).encode()
            if status_name(job.status) in TERMINAL:
                self.views.put((caller.owner, job.id), body, self.settings.gateway_terminal_cache_s)
        return body

    def remember(self, caller: Caller, job: job_pb2.Job) -> None:
        """Puts a job the gateway just got from ingest (submit, cancel) in the cache."""
        self.jobs.put((caller.owner, job.id), job, self._job_ttl(job))

    async def batch(self, caller: Caller, batch_id: str) -> BatchRecord:
        """The caller's batch; 404 if it does not exist or is someone else's."""
        record = await self.batches.get(batch_id)
        if record is None or record.owner != caller.owner:
            raise not_found(f"no batch {batch_id}")
        return record

    async def batch_jobs(self, caller: Caller, record: BatchRecord) -> list[job_pb2.Job]:
        """The batch's jobs in submission order; 410 once their records have expired."""
        try:
            return list(await asyncio.gather(*(self.job(caller, job_id) for job_id in record.job_ids)))
        except GatewayError as error:
            if error.status != 404:
                raise
            raise GatewayError(410, "gone", f"the jobs of batch {record.id} are no longer stored") from None

    async def manifest(self, job: job_pb2.Job) -> dict:
        """A succeeded job's manifest."""
        uri = job.result.manifest_uri

        async def load() -> dict:
            return json.loads(await asyncio.to_thread(self.blobs.get, uri))

        return await self.manifests.get_or_load(uri, load, lambda _: MANIFEST_TTL_S)

    async def finished(self, caller: Caller, job_id: str) -> tuple[job_pb2.Job, dict]:
        """The caller's succeeded job and its manifest; 409 while it is not (yet) succeeded."""
        job = await self.job(caller, job_id)
        status = status_name(job.status)
        if status != "succeeded" or not job.result.manifest_uri:
            raise GatewayError(409, "not_finished", f"job {job_id} is {status}; its files exist once it has succeeded")
        return job, await self.manifest(job)

    async def layer(self, caller: Caller, job_id: str, index: int) -> tuple[job_pb2.Job, dict, dict]:
        """(job, manifest, layer entry) for the layer at `index` of a succeeded job."""
        job, manifest = await self.finished(caller, job_id)
        for layer in manifest.get("layers", []):
            if layer.get("index") == index:
                return job, manifest, layer
        raise not_found(f"job {job_id} has no layer {index}")


def file_uri(manifest_uri: str, relative: str) -> str:
    """The URI of a file a manifest names (relative to the manifest); refuses names that climb out."""
    if not relative or relative.startswith("/") or ".." in relative.split("/"):
        raise not_found(f"no file {relative!r}")
    return f"{manifest_uri.rsplit('/', 1)[0]}/{relative}"
