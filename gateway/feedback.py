"""Ratings of results. A bad one keeps the job's original and layers for analysis.

Job files live under jobs/<id>/ and go when the job's retention ends; feedback/<id>/ is
outside that, so what a user called bad survives to be looked at.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from services.common.blobstore import BlobStore

RATINGS = ("good", "bad")


@dataclass(frozen=True)
class Feedback:
    """One rating of one job."""

    job_id: str
    owner: str
    rating: str
    comment: str
    time: float


def blob_key(blobs: BlobStore, uri: str) -> str:
    """The blob-store key of a URI inside it."""
    prefix = blobs.root_url + "/"
    if not uri.startswith(prefix):
        raise ValueError(f"{uri} is not inside the blob store at {blobs.root_url}")
    return uri[len(prefix) :]


def record_feedback(blobs: BlobStore, feedback: Feedback, manifest_uri: str, manifest: dict | None) -> list[str]:
    """Stores the rating at feedback/<job>/feedback.json; for a bad one also copies the original,
    the manifest and the layer files there. Returns the keys written. Blocking: run it in a thread.
    """
    if feedback.rating not in RATINGS:
        raise ValueError(f"rating must be one of {', '.join(RATINGS)}, not {feedback.rating!r}")
    prefix = f"feedback/{feedback.job_id}"
    written = []
    if feedback.rating == "bad" and manifest_uri:
        base = manifest_uri.rsplit("/", 1)[0]
        # The original as ingest stored it, the manifest, and each layer file the manifest names.
        files = ["source.png", "manifest.json", *(layer["file"] for layer in (manifest or {}).get("layers", []))]
        for name in files:
            uri = f"{base}/{name}"
            if blobs.exists(uri):
                written.append(blobs.put(f"{prefix}/job/{name}", blobs.get(uri)))
    record = {
        "job_id": feedback.job_id,
        "owner": feedback.owner,
        "rating": feedback.rating,
        "comment": feedback.comment,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(feedback.time)),
        "kept": [blob_key(blobs, uri) for uri in written],
    }
    written.append(blobs.put(f"{prefix}/feedback.json", json.dumps(record, indent=2).encode()))
    return [blob_key(blobs, uri) for uri in written]
