"""The JSON the API answers, as Pydantic models: for the OpenAPI document only.

The routes build their bodies in gateway/views.py (and beside them) and send them as they are;
these models describe those bodies (`responses={200: {"model": ...}}`), so FastAPI neither checks
nor filters what is sent. tests/unit/test_gateway_openapi.py validates real bodies against them.
A field the view leaves out rather than setting to null is typed `X | SkipJsonSchema[None] = omitted()`:
optional, never null.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobStage = Literal["queued", "decompose", "matting", "describe", "export", "done"]
Engine = Literal["auto", "classic", "qwen"]
ExportFormat = Literal["psd", "pptx", "svg", "zip"]
LayerKind = Literal["background", "shape", "image", "text"]
BatchStatus = Literal["queued", "running", "succeeded", "partial", "cancelled", "failed"]

MANIFEST_SCHEMA = Path(__file__).resolve().parents[1] / "services" / "common" / "manifest.schema.json"


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted(description: str | None = None, **constraints: Any) -> Any:
    """A field the view leaves out when it has no value (typed `X | SkipJsonSchema[None]`): no null default."""
    return Field(default=None, description=description, json_schema_extra=_drop_default, **constraints)


class _Fixed(BaseModel):
    """A body whose keys are all listed: any other key is an error (additionalProperties: false)."""

    model_config = ConfigDict(extra="forbid")


class Error(_Fixed):
    """Every error answer: a code a program can branch on and a sentence a person can act on."""

    error: str = Field(description="machine-readable code, e.g. not_found, too_large, rate_limited")
    detail: str = Field(description="what went wrong and what to do about it")


class LayerLinks(_Fixed):
    """Where a layer's files are."""

    png: str
    thumbnail: str
    decompose: str


class Layer(_Fixed):
    """One layer of a succeeded job, bottom to top by `index` (its manifest entry, without file names)."""

    index: int = Field(ge=0)
    id: str
    name: str
    kind: LayerKind
    bbox: list[int] = Field(min_length=4, max_length=4, description="left, top, right, bottom in pixels")
    parent: str | SkipJsonSchema[None] = omitted("the layer this one was decomposed from")
    text: str | SkipJsonSchema[None] = omitted()
    description: str
    font_size_px: float | SkipJsonSchema[None] = omitted()
    color: str | SkipJsonSchema[None] = omitted("text colour as #rrggbb")
    links: LayerLinks


class JobOptions(_Fixed):
    """What the job was asked for."""

    layers: int | Literal["auto"]
    engine: Engine
    describe: str | None = Field(description="the describer; null = the service default")
    formats: list[ExportFormat] = Field(description="exports built when the job ends")


class ExportLinks(_Fixed):
    """Where each export of a succeeded job is (built on first request)."""

    psd: str
    pptx: str
    svg: str
    zip: str


class JobLinks(_Fixed):
    """Where the job and its files are; manifest and exports once it succeeded."""

    self: str
    events: str
    feedback: str
    manifest: str | SkipJsonSchema[None] = omitted()
    exports: ExportLinks | SkipJsonSchema[None] = omitted()


class Job(_Fixed):
    """A job; a succeeded one also has its layers, quality and export links."""

    id: str
    status: JobStatus
    stage: JobStage
    progress: int = Field(ge=0, le=100, description="percent done")
    error: str | None = Field(description="why it failed, for a person")
    error_code: str | None
    trace_id: str | None
    batch_id: str | None
    filename: str
    width: int = Field(ge=0)
    height: int = Field(ge=0)
    created_at: datetime | None
    updated_at: datetime | None
    parent_job_id: str | None = Field(description="for a layer decomposed again: the job it came from")
    parent_layer_id: str | None
    cached_from: str | None = Field(description="set when the result cache served it: the job it copies")
    options: JobOptions
    links: JobLinks
    layer_count: int | SkipJsonSchema[None] = omitted()
    quality_score: float | SkipJsonSchema[None] = omitted(ge=0, le=100)
    recomposition_psnr_db: float | None = Field(default=None, description="null when the layers recompose exactly")
    engine: str | SkipJsonSchema[None] = omitted()
    layers: list[Layer] | SkipJsonSchema[None] = omitted()


class Rejected(_Fixed):
    """A file of a submission or batch that was refused, and why."""

    filename: str
    error: str
    detail: str


class Submission(_Fixed):
    """The answer to an upload: the jobs made, and the files refused (ZIP members that are not images ...)."""

    batch_id: str | None = Field(description="set for several images or any ZIP (GET /api/v1/batches/{batch_id})")
    jobs: list[Job]
    rejected: list[Rejected]


class BatchLinks(_Fixed):
    """Where the batch, its results and its events are."""

    self: str
    results: str
    events: str


class Batch(_Fixed):
    """A batch: n of m done, a count per status, its jobs and refused files (its events carry the counts)."""

    batch_id: str
    total: int = Field(ge=0)
    done: int = Field(ge=0)
    succeeded: int = Field(ge=0)
    failed: int = Field(ge=0)
    cancelled: int = Field(ge=0)
    running: int = Field(ge=0)
    queued: int = Field(ge=0)
    progress: float = Field(ge=0, le=1)
    status: BatchStatus
    jobs: list[Job]
    rejected: list[Rejected]
    links: BatchLinks


class FeedbackReceipt(_Fixed):
    """A stored rating."""

    job_id: str
    rating: Literal["good", "bad"]
    kept_files: int = Field(ge=0, description="files kept for analysis besides the rating (a bad one keeps some)")


class Quota(_Fixed):
    """The caller's monthly job quota."""

    limit: int
    remaining: int
    reset_at: int = Field(description="Unix time the count starts again")


class Limits(_Fixed):
    """What this gateway accepts."""

    max_upload_bytes: int
    max_batch_files: int
    max_layers: int
    submissions_per_window: int
    window_s: int
    engines: list[str]
    formats: list[str]


class Session(_Fixed):
    """Who this caller is to the gateway, and what it allows."""

    keys_required: bool
    signed_in: bool
    plan: str | None
    quota: Quota | None = Field(description="null without a caller (keys required, none sent) or a plan with no quota")
    limits: Limits


class SignedIn(_Fixed):
    """A browser session bound to an API key."""

    signed_in: Literal[True]
    plan: str


class SignedOut(_Fixed):
    """The session ended."""

    signed_in: Literal[False]


class Health(_Fixed):
    """The process answers."""

    status: Literal["ok"]


class ReadinessChecks(_Fixed):
    """Each dependency's state."""

    redis: Literal["ok", "unreachable"]
    ingest: Literal["ok", "not serving"]


class Readiness(_Fixed):
    """Whether this gateway can serve requests, and which dependency stops it."""

    status: Literal["ready", "not ready"]
    checks: ReadinessChecks


class Manifest(RootModel[dict[str, Any]]):
    """A succeeded job's manifest.json: services/common/manifest.schema.json."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """The manifest's own JSON Schema, less the keys that only make sense in a file of its own."""
        schema = json.loads(MANIFEST_SCHEMA.read_text(encoding="utf-8"))
        for key in ("$schema", "$id"):
            schema.pop(key, None)
        return schema


_ERROR_TEXT = {
    400: "the request is wrong in a way `detail` explains",
    401: "this gateway needs an API key (or the one sent is not valid)",
    404: "no such job, batch or layer (or it is someone else's)",
    409: "not possible in the job's or batch's current state (e.g. not finished yet)",
    410: "the files are no longer stored",
    413: "an upload (or the request) is over the size limit",
    415: "an upload is not a PNG, JPEG or WebP image (or a ZIP of them)",
    422: "a parameter or the body does not have the expected form",
    429: "over the rate limit or the monthly quota; Retry-After says when to try again",
    502: "the job service failed",
    503: "the job service did not answer; try again in a moment",
    504: "the job service did not answer in time",
}
# What every route that reaches the job service (ingest) may answer when it does not.
INGEST_DOWN = (502, 503, 504)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries of the error answers a route can give, each with the Error body."""
    return {status: {"model": Error, "description": _ERROR_TEXT[status]} for status in sorted(statuses)}


def answer(status: int, model: type[BaseModel], description: str | None = None) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry of a route's JSON answer (documented only: the route sends its own body)."""
    entry: dict[str, Any] = {"model": model}
    if description:
        entry["description"] = description
    return {status: entry}
