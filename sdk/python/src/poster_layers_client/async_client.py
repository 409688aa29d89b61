"""The asyncio client of the poster-layers HTTP API: the same calls as `Client`, awaited."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from poster_layers_client import protocol
from poster_layers_client.client import DEFAULT_URL
from poster_layers_client.errors import ServerError
from poster_layers_client.models import Batch, Job, Submission
from poster_layers_client.protocol import FileInput
from poster_layers_client.waiting import BatchWait, JobWait, OnBatchProgress, OnProgress, StreamWait


async def _call(callback: Callable[[Any], object] | None, value: object) -> None:
    if callback is not None and value is not None:
        result = callback(value)
        if inspect.isawaitable(result):
            await result


class AsyncClient:
    """`async with AsyncClient("http://127.0.0.1:8080", api_key="pl_...") as client: ...`.

    Same behaviour as `Client`; progress callbacks may be plain or async functions.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        sse_idle_timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        auth = {"X-API-Key": api_key} if api_key else {}
        self.sse_idle_timeout = sse_idle_timeout
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers={**(headers or {}), **auth}, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        protocol.raise_for_error(response)
        return response.json()

    async def submit(
        self,
        file: FileInput,
        *,
        layers: int | str = "auto",
        engine: str = "auto",
        formats: Iterable[str] = (),
        describe: str | None = None,
        no_cache: bool = False,
        matting: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Uploads one image as a job (see `Client.submit`)."""
        if protocol.is_archive(file):
            raise ValueError("a ZIP archive is a batch: use submit_batch")
        submission = await self.submit_batch(
            [file],
            layers=layers,
            engine=engine,
            formats=formats,
            describe=describe,
            no_cache=no_cache,
            matting=matting,
            idempotency_key=idempotency_key,
        )
        return submission.jobs[0]

    async def submit_batch(
        self,
        files: Sequence[FileInput],
        *,
        layers: int | str = "auto",
        engine: str = "auto",
        formats: Iterable[str] = (),
        describe: str | None = None,
        no_cache: bool = False,
        matting: str | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Uploads several images, or ZIP archives of images, as one batch (see `Client.submit_batch`)."""
        with ExitStack() as stack:
            data = await self._json(
                "POST",
                f"{protocol.API}/jobs",
                data=protocol.form_fields(layers, engine, formats, describe, no_cache, matting),
                files=protocol.upload_parts(files, stack),
                headers=protocol.headers_for_submit(idempotency_key),
            )
        return Submission.from_json(data)

    async def get(self, job_id: str) -> Job:
        """The job now; NotFound when there is no such job or it is someone else's."""
        return Job.from_json(await self._json("GET", protocol.job_path(job_id)))

    async def cancel(self, job_id: str) -> Job:
        """Cancels the job."""
        return Job.from_json(await self._json("DELETE", protocol.job_path(job_id)))

    async def decompose_layer(
        self, job_id: str, index: int, *, layers: int | str | None = None, engine: str | None = None
    ) -> Job:
        """Starts a child job that decomposes one layer of a finished job again."""
        path, body = protocol.decompose_request(job_id, index, layers, engine)
        return Job.from_json(await self._json("POST", path, json=body))

    async def manifest(self, job_id: str) -> dict[str, Any]:
        """A finished job's manifest.json."""
        return await self._json("GET", protocol.job_path(job_id, "manifest"))

    async def wait(
        self,
        job_id: str,
        on_progress: OnProgress | None = None,
        *,
        timeout: float = 600.0,
        poll_interval: float = 1.0,
    ) -> Job:
        """Follows the job until it ends and returns it (see `Client.wait`)."""
        state = JobWait(job_id, timeout)
        await self._until_finished(
            state, protocol.job_path(job_id, "events"), lambda: self.get(job_id), on_progress, poll_interval
        )
        return await self.get(job_id)

    async def _until_finished(
        self,
        state: StreamWait,
        events_path: str,
        fetch: Callable[[], Awaitable[Any]],
        callback: Callable[[Any], object] | None,
        poll_interval: float,
    ) -> None:
        while not state.finished:
            if state.polling:
                await self._poll(state, fetch, callback, poll_interval)
            else:
                await self._follow(state, events_path, callback)

    async def _follow(self, state: StreamWait, path: str, callback: Callable[[Any], object] | None) -> None:
        delivered, error = 0, None
        read = min(self.sse_idle_timeout, state.remaining())
        try:
            async with self._http.stream(
                "GET",
                path,
                headers=state.resume_headers(),
                timeout=httpx.Timeout(self._http.timeout.connect, read=read),
            ) as response:
                if response.status_code < 500 and response.is_error:
                    await response.aread()
                    protocol.raise_for_error(response)
                if response.status_code == 200 and not protocol.is_event_stream(response):
                    state.stream_unusable()
                    return
                if protocol.is_event_stream(response):
                    decoder = state.decoder()
                    async for line in response.aiter_lines():
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        delivered += 1
                        await _call(callback, state.on_event(event, decoder))
                        if state.finished:
                            return
        except httpx.TransportError as failure:
            error = failure
        await asyncio.sleep(state.connection_ended(delivered, error))

    async def _poll(
        self,
        state: StreamWait,
        fetch: Callable[[], Awaitable[Any]],
        callback: Callable[[Any], object] | None,
        interval: float,
    ) -> None:
        try:
            report = state.on_status(await fetch())
        except (httpx.TransportError, ServerError) as error:
            state.last_error, report = error, None
        await _call(callback, report)
        if not state.finished:
            await asyncio.sleep(min(interval, state.remaining()))

    async def download(self, job_id: str, fmt: str, dest: str | os.PathLike[str]) -> Path:
        """Saves one of a finished job's exports (psd, pptx, svg or zip) to `dest` (a file or a folder)."""
        return await self._save(protocol.export_path(job_id, fmt), dest, f"{job_id}.{fmt}")

    async def download_layer(self, job_id: str, index: int, dest: str | os.PathLike[str]) -> Path:
        """Saves one layer as a full-canvas RGBA PNG."""
        return await self._save(protocol.layer_path(job_id, index), dest, f"{job_id}-{index:02d}.png")

    async def _save(self, path: str, dest: str | os.PathLike[str], fallback: str) -> Path:
        async with self._http.stream("GET", path) as response:
            if response.is_error:
                await response.aread()
                protocol.raise_for_error(response)
            target = protocol.target_path(dest, response.headers.get("content-disposition"), fallback)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            try:
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        return target

    async def get_batch(self, batch_id: str) -> Batch:
        """A batch's progress (n of m), status and jobs."""
        return Batch.from_json(await self._json("GET", protocol.batch_path(batch_id)))

    async def wait_batch(
        self,
        batch_id: str,
        on_progress: OnBatchProgress | None = None,
        *,
        timeout: float = 1800.0,
        poll_interval: float = 1.0,
    ) -> Batch:
        """Follows the batch until every job in it ended and returns it (see `Client.wait_batch`)."""
        state = BatchWait(batch_id, timeout)
        await self._until_finished(
            state, protocol.batch_path(batch_id, "events"), lambda: self.get_batch(batch_id), on_progress, poll_interval
        )
        return await self.get_batch(batch_id)

    async def download_batch(self, batch_id: str, dest: str | os.PathLike[str]) -> Path:
        """Saves one ZIP of every finished job's results in the batch."""
        return await self._save(protocol.batch_path(batch_id, "results.zip"), dest, f"{batch_id}.zip")
