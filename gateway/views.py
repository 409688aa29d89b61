"""The JSON the API answers: a job (with its layers and links once it succeeded) from its proto and manifest."""

from __future__ import annotations

from gateway.events import stage_name, status_name
from poster.v1 import job_pb2
from services.batches import job_state, summarize
from services.common.batchstore import BatchRecord
from services.common.convert import ENGINES, EXPORT_FORMATS

API = "/api/v1"


def _time(stamp) -> str | None:
    return stamp.ToJsonString() if stamp.seconds or stamp.nanos else None


def layer_view(job_url: str, layer: dict) -> dict:
    """One manifest layer with links to its PNG, thumbnail and recursive decomposition."""
    index = layer["index"]
    view = {
        key: layer.get(key)
        for key in ("index", "id", "name", "kind", "bbox", "parent", "text", "description", "font_size_px", "color")
        if layer.get(key) is not None
    }
    view["links"] = {
        "png": f"{job_url}/layers/{index}.png",
        "thumbnail": f"{job_url}/layers/{index}/thumbnail",
        "decompose": f"{job_url}/layers/{index}/decompose",
    }
    return view


def job_view(job: job_pb2.Job, manifest: dict | None = None) -> dict:
    """The API's view of a job; `manifest` (a succeeded job's) adds layers, quality and export links."""
    url = f"{API}/jobs/{job.id}"
    options = job.options
    view: dict = {
        "id": job.id,
        "status": status_name(job.status),
        "stage": stage_name(job.stage),
        "progress": job.progress,
        "error": job.error or None,
        "error_code": job.error_code or None,
        "trace_id": job.trace_id or None,
        "batch_id": job.batch_id or None,
        "filename": job.source_filename,
        "width": job.width,
        "height": job.height,
        "created_at": _time(job.created_at),
        "updated_at": _time(job.updated_at),
        "parent_job_id": job.parent_job_id or None,
        "parent_layer_id": job.parent_layer_id or None,
        "cached_from": job.cached_from or None,
        "options": {
            "layers": options.layers or "auto",
            "engine": ENGINES.get(options.engine, "auto"),
            "describe": options.describer or None,
            "formats": [EXPORT_FORMATS[value] for value in options.export_formats if value in EXPORT_FORMATS],
        },
        "links": {"self": url, "events": f"{url}/events", "feedback": f"{url}/feedback"},
    }
    if manifest is not None:
        view["layer_count"] = len(manifest.get("layers", []))
        view["quality_score"] = manifest.get("quality_score")
        view["recomposition_psnr_db"] = manifest.get("recomposition_psnr_db")
        view["engine"] = manifest.get("engine")
        view["layers"] = [layer_view(url, layer) for layer in manifest.get("layers", [])]
        view["links"]["manifest"] = f"{url}/manifest"
        view["links"]["exports"] = {name: f"{url}/exports/{name}" for name in EXPORT_FORMATS.values()}
    return view


def batch_summary(record: BatchRecord, jobs: list[job_pb2.Job]) -> dict:
    """A batch's n of m: {"batch_id", "total", "done", a count per status, "progress" (0..1), "status"}."""
    return {"batch_id": record.id, **summarize([job_state(job) for job in jobs])}


def batch_view(record: BatchRecord, jobs: list[job_pb2.Job], job_views: list[dict]) -> dict:
    """The API's view of a batch: its summary, its jobs (as GET /jobs/{id} shows them), refusals and links."""
    url = f"{API}/batches/{record.id}"
    return {
        **batch_summary(record, jobs),
        "jobs": job_views,
        "rejected": record.rejected,
        "links": {"self": url, "results": f"{url}/results.zip", "events": f"{url}/events"},
    }
