"""A typed client for the poster-layers HTTP API (and, with the `grpc` extra, its gRPC stubs).

from poster_layers_client import Client

with Client("http://127.0.0.1:8080") as client:
    job = client.submit("poster.png", formats=["psd"])
    job = client.wait(job.id, on_progress=lambda p: print(p.stage, p.progress))
    client.download(job.id, "psd", "poster.psd")
"""

from poster_layers_client.async_client import AsyncClient
from poster_layers_client.client import Client
from poster_layers_client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PosterLayersError,
    RateLimited,
    ServerError,
    Unauthorized,
    UnsupportedMediaType,
    WaitTimeout,
)
from poster_layers_client.models import Batch, Job, JobOptions, Layer, Progress, Rejected, Submission

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Batch",
    "Client",
    "Conflict",
    "Forbidden",
    "Gone",
    "InvalidRequest",
    "Job",
    "JobOptions",
    "Layer",
    "NotFound",
    "PayloadTooLarge",
    "PosterLayersError",
    "Progress",
    "RateLimited",
    "Rejected",
    "ServerError",
    "Submission",
    "Unauthorized",
    "UnsupportedMediaType",
    "WaitTimeout",
]
