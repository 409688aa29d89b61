"""Typed views of the gateway's JSON: jobs, layers, submissions, progress events and batches.

Each `from_json` reads the fields it knows and ignores the rest, so a newer gateway that adds
fields does not break an older client; the whole answer stays available as `raw`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def _time(value: Any) -> datetime | None:
    # The gateway writes RFC 3339 with nanoseconds; fromisoformat keeps microseconds.
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _fraction(percent: float) -> float:
    return max(0.0, min(1.0, percent / 100.0))


@dataclass(frozen=True)
class Layer:
    """One layer of a finished job, bottom to top by `index`."""

    index: int
    id: str
    name: str
    kind: str
    bbox: tuple[int, int, int, int] | None
    parent: str | None = None
    text: str | None = None
    description: str | None = None
    font_size_px: float | None = None
    color: str | None = None
    links: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layer:
        """A layer from the job view's `layers` list."""
        bbox = data.get("bbox")
        return cls(
            index=int(data["index"]),
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            kind=str(data.get("kind", "")),
            bbox=(int(bbox[0]), int(bbox[1]), int(bbox[2]), int(bbox[3])) if bbox else None,
            parent=data.get("parent"),
            text=data.get("text"),
            description=data.get("description"),
            font_size_px=data.get("font_size_px"),
            color=data.get("color"),
            links=dict(data.get("links") or {}),
        )


@dataclass(frozen=True)
class JobOptions:
    """The options a job runs with: `layers` is "auto" or a count."""

    layers: int | str = "auto"
    engine: str = "auto"
    describe: str | None = None
    formats: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobOptions:
        """Options from a job view."""
        return cls(
            layers=data.get("layers", "auto"),
            engine=data.get("engine", "auto"),
            describe=data.get("describe"),
            formats=tuple(data.get("formats") or ()),
        )


@dataclass(frozen=True)
class Job:
    """A job as `GET /api/v1/jobs/{id}` shows it; `layers` is filled once it succeeded.

    `progress` is a percentage (0-100) as the API reports it; `fraction` is the same from 0 to 1.
    """

    id: str
    status: str
    stage: str
    progress: int
    options: JobOptions
    filename: str = ""
    width: int = 0
    height: int = 0
    error: str | None = None
    error_code: str | None = None
    trace_id: str | None = None
    batch_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    parent_job_id: str | None = None
    parent_layer_id: str | None = None
    cached_from: str | None = None
    engine: str | None = None
    layer_count: int | None = None
    quality_score: float | None = None
    recomposition_psnr_db: float | None = None
    layers: tuple[Layer, ...] = ()
    links: dict[str, Any] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        """True when the job finished with layers."""
        return self.status == "succeeded"

    @property
    def fraction(self) -> float:
        """Progress from 0.0 to 1.0."""
        return _fraction(self.progress)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        """A job from the gateway's job view."""
        return cls(
            id=str(data["id"]),
            status=str(data.get("status", "")),
            stage=str(data.get("stage", "")),
            progress=int(data.get("progress") or 0),
            options=JobOptions.from_json(data.get("options") or {}),
            filename=str(data.get("filename") or ""),
            width=int(data.get("width") or 0),
            height=int(data.get("height") or 0),
            error=data.get("error"),
            error_code=data.get("error_code"),
            trace_id=data.get("trace_id"),
            batch_id=data.get("batch_id"),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            parent_job_id=data.get("parent_job_id"),
            parent_layer_id=data.get("parent_layer_id"),
            cached_from=data.get("cached_from"),
            engine=data.get("engine"),
            layer_count=data.get("layer_count"),
            quality_score=data.get("quality_score"),
            recomposition_psnr_db=data.get("recomposition_psnr_db"),
            layers=tuple(Layer.from_json(layer) for layer in data.get("layers") or ()),
            links=dict(data.get("links") or {}),
            raw=data,
        )


@dataclass(frozen=True)
class Rejected:
    """A file of a submission that was refused, and why (the same code and detail an error would carry)."""

    filename: str
    error: str
    detail: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rejected:
        """An entry of a submission's or batch's `rejected` list."""
        return cls(
            filename=str(data.get("filename", "")),
            error=str(data.get("error", "")),
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class Submission:
    """What `POST /api/v1/jobs` answered: the jobs made, and the files refused (a batch keeps going without them)."""

    batch_id: str | None
    jobs: tuple[Job, ...]
    rejected: tuple[Rejected, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Submission:
        """A submission from the 202 answer."""
        return cls(
            batch_id=data.get("batch_id"),
            jobs=tuple(Job.from_json(job) for job in data.get("jobs") or ()),
            rejected=tuple(Rejected.from_json(item) for item in data.get("rejected") or ()),
        )


@dataclass(frozen=True)
class Progress:
    """One progress event of a job (from its event stream, or a status read while polling).

    `event_id` is the stream id the gateway resumes after; None for a status read.
    """

    job_id: str
    status: str
    stage: str
    progress: int
    message: str = ""
    event_id: str | None = None
    time: datetime | None = None
    layer: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """True for the job's last event."""
        return self.status in TERMINAL

    @property
    def fraction(self) -> float:
        """Progress from 0.0 to 1.0."""
        return _fraction(self.progress)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        """An event from the SSE `data:` JSON."""
        return cls(
            job_id=str(data.get("job_id", "")),
            status=str(data.get("status", "")),
            stage=str(data.get("stage", "")),
            progress=int(data.get("progress") or 0),
            message=str(data.get("message") or ""),
            event_id=data.get("event_id"),
            time=_time(data.get("time")),
            layer=data.get("layer"),
        )

    @classmethod
    def from_job(cls, job: Job) -> Progress:
        """The progress a status read shows (used when the event stream cannot be followed)."""
        return cls(job_id=job.id, status=job.status, stage=job.stage, progress=job.progress, time=job.updated_at)


@dataclass(frozen=True)
class Batch:
    """A batch as `GET /api/v1/batches/{id}` shows it: counts of its jobs by state, and the jobs."""

    batch_id: str
    status: str
    total: int
    done: int
    succeeded: int
    failed: int
    cancelled: int
    running: int
    queued: int
    progress: float
    jobs: tuple[Job, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    links: dict[str, Any] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once every job of the batch ended."""
        return self.done >= self.total

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        """A batch from the gateway's batch view."""
        return cls(
            batch_id=str(data["batch_id"]),
            status=str(data.get("status", "")),
            total=int(data.get("total") or 0),
            done=int(data.get("done") or 0),
            succeeded=int(data.get("succeeded") or 0),
            failed=int(data.get("failed") or 0),
            cancelled=int(data.get("cancelled") or 0),
            running=int(data.get("running") or 0),
            queued=int(data.get("queued") or 0),
            progress=float(data.get("progress") or 0),
            jobs=tuple(Job.from_json(job) for job in data.get("jobs") or ()),
            rejected=tuple(Rejected.from_json(item) for item in data.get("rejected") or ()),
            links=dict(data.get("links") or {}),
            raw=data,
        )
