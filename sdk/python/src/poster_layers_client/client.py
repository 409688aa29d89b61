"""The blocking client of the poster-layers HTTP API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from poster_layers_client import protocol
from poster_layers_client.errors import ServerError
from poster_layers_client.models import Batch, Job, Submission
from poster_layers_client.protocol import FileInput
from poster_layers_client.waiting import BatchWait, JobWait, OnBatchProgress, OnProgress, StreamWait

DEFAULT_URL = "http://127.0.0.1:8080"


class Client:
    """A client of one gateway: `Client("http://127.0.0.1:8080", api_key="pl_...")`.

    Without `api_key` (a gateway in local mode) the jobs belong to this client's session cookie,
    which it keeps for its lifetime. Use it as a context manager, or call `close()`.
    `timeout` is per HTTP request (seconds); `wait` has its own.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        sse_idle_timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        auth = {"X-API-Key": api_key} if api_key else {}
        self.sse_idle_timeout = sse_idle_timeout
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, headers={**(headers or {}), **auth}, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        protocol.raise_for_error(response)
        return response.json()

    def submit(
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
        """Uploads one image (PNG, JPEG or WebP) as a job; `formats` are exports to build when it ends.

        `layers` is "auto" or a count; `engine` auto, classic or qwen; `matting` off, guided or deep
        (None: the service default); `no_cache` runs the job even
        when the gateway's result cache holds its result; the same `idempotency_key` on a retried
        request gives back the same job. A ZIP archive or several images go through `submit_batch`.
        Refused uploads raise the typed error (UnsupportedMediaType, PayloadTooLarge, BadRequest,
        RateLimited, ...).
        """
        if protocol.is_archive(file):
            raise ValueError("a ZIP archive is a batch: use submit_batch")
        submission = self.submit_batch(
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

    def submit_batch(
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
        """Uploads several images, or ZIP archives of images, in one request (one batch).

        Files the job service refuses are listed in `rejected`; the call raises only when none was accepted.
        """
        with ExitStack() as stack:
            data = self._json(
                "POST",
                f"{protocol.API}/jobs",
                data=protocol.form_fields(layers, engine, formats, describe, no_cache, matting),
                files=protocol.upload_parts(files, stack),
                headers=protocol.headers_for_submit(idempotency_key),
            )
        return Submission.from_json(data)

    def get(self, job_id: str) -> Job:
        """The job now; NotFound when there is no such job or it is someone else's."""
        return Job.from_json(self._json("GET", protocol.job_path(job_id)))

    def cancel(self, job_id: str) -> Job:
        """Cancels the job (a queued one at once, a running one at its next check)."""
        return Job.from_json(self._json("DELETE", protocol.job_path(job_id)))

    def decompose_layer(
        self, job_id: str, index: int, *, layers: int | str | None = None, engine: str | None = None
    ) -> Job:
        """Starts a child job that decomposes one layer of a finished job again; it counts as a submission."""
        path, body = protocol.decompose_request(job_id, index, layers, engine)
        return Job.from_json(self._json("POST", path, json=body))

    def manifest(self, job_id: str) -> dict[str, Any]:
        """A finished job's manifest.json."""
        return self._json("GET", protocol.job_path(job_id, "manifest"))

    def wait(
        self,
        job_id: str,
        on_progress: OnProgress | None = None,
        *,
        timeout: float = 600.0,
        poll_interval: float = 1.0,
    ) -> Job:
        """Follows the job until it ends and returns it (with its layers once it succeeded).

        `on_progress` gets every progress event once, in order. The event stream is resumed after
        a dropped connection; when it cannot be used the job is polled every `poll_interval` s.
        Raises WaitTimeout after `timeout` seconds. A failed job is returned, not raised: see `status`.
        """
        state = JobWait(job_id, timeout)
        self._until_finished(
            state, protocol.job_path(job_id, "events"), lambda: self.get(job_id), on_progress, poll_interval
        )
        return self.get(job_id)

    def _until_finished(
        self,
        state: StreamWait,
        events_path: str,
        fetch: Callable[[], Any],
        callback: Callable[[Any], object] | None,
        poll_interval: float,
    ) -> None:
        while not state.finished:
            if state.polling:
                self._poll(state, fetch, callback, poll_interval)
            else:
                self._follow(state, events_path, callback)

    def _follow(self, state: StreamWait, path: str, callback: Callable[[Any], object] | None) -> None:
        delivered, error = 0, None
        read = min(self.sse_idle_timeout, state.remaining())
        try:
            with self._http.stream(
                "GET",
                path,
                headers=state.resume_headers(),
                timeout=httpx.Timeout(self._http.timeout.connect, read=read),
            ) as response:
                if response.status_code < 500 and response.is_error:
                    response.read()
                    protocol.raise_for_error(response)
                if response.status_code == 200 and not protocol.is_event_stream(response):
                    state.stream_unusable()
                    return
                if protocol.is_event_stream(response):
                    decoder = state.decoder()
                    for line in response.iter_lines():
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        delivered += 1
                        report = state.on_event(event, decoder)
                        if report is not None and callback is not None:
                            callback(report)
                        if state.finished:
                            return
        except httpx.TransportError as failure:
            error = failure
        time.sleep(state.connection_ended(delivered, error))

    def _poll(
        self, state: StreamWait, fetch: Callable[[], Any], callback: Callable[[Any], object] | None, interval: float
    ) -> None:
        try:
            report = state.on_status(fetch())
        except (httpx.TransportError, ServerError) as error:
            state.last_error, report = error, None
        if report is not None and callback is not None:
            callback(report)
        if not state.finished:
            time.sleep(min(interval, state.remaining()))

    def download(self, job_id: str, fmt: str, dest: str | os.PathLike[str]) -> Path:
        """Saves one of a finished job's exports (psd, pptx, svg or zip) to `dest` (a file, or a folder to put it in).

        Built on first request if the job did not build it at its end; Conflict while the job runs.
        """
        return self._save(protocol.export_path(job_id, fmt), dest, f"{job_id}.{fmt}")

    def download_layer(self, job_id: str, index: int, dest: str | os.PathLike[str]) -> Path:
        """Saves one layer as a full-canvas RGBA PNG."""
        return self._save(protocol.layer_path(job_id, index), dest, f"{job_id}-{index:02d}.png")

    def _save(self, path: str, dest: str | os.PathLike[str], fallback: str) -> Path:
        with self._http.stream("GET", path) as response:
            if response.is_error:
                response.read()
                protocol.raise_for_error(response)
            target = protocol.target_path(dest, response.headers.get("content-disposition"), fallback)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            try:
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        return target

    def get_batch(self, batch_id: str) -> Batch:
        """A batch's progress (n of m), status and jobs."""
        return Batch.from_json(self._json("GET", protocol.batch_path(batch_id)))

    def wait_batch(
        self,
        batch_id: str,
        on_progress: OnBatchProgress | None = None,
        *,
        timeout: float = 1800.0,
        poll_interval: float = 1.0,
    ) -> Batch:
        """Follows the batch until every job in it ended and returns it (with its jobs).

        `on_progress` gets the batch's summary (counts and progress, without `jobs`) whenever it
        changed, from the batch's event stream, or from polling when the stream cannot be used.
        """
        state = BatchWait(batch_id, timeout)
        self._until_finished(
            state, protocol.batch_path(batch_id, "events"), lambda: self.get_batch(batch_id), on_progress, poll_interval
        )
        return self.get_batch(batch_id)

    def download_batch(self, batch_id: str, dest: str | os.PathLike[str]) -> Path:
        """Saves one ZIP of every finished job's results in the batch."""
        return self._save(protocol.batch_path(batch_id, "results.zip"), dest, f"{batch_id}.zip")
