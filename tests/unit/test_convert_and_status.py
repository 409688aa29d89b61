"""Options conversion with defaults, and the domain-error to status-code map."""

from __future__ import annotations

import grpc
import pytest

from poster.v1 import job_pb2
from services.common import errors
from services.common.config import Settings
from services.common.convert import options_from_proto, options_to_proto
from services.common.options import JobOptions, MattingOptions
from services.common.status import status_for


def test_zero_values_take_service_defaults() -> None:
    settings = Settings(matting_radius=7, default_describer="local", default_engine="classic")
    options = options_from_proto(job_pb2.JobOptions(), settings)
    assert options.engine == "classic" and options.matting.radius == 7 and options.describer == "local"
    assert options.seed is None and options.layers == 0


def test_round_trip() -> None:
    original = JobOptions(
        layers=5,
        engine="classic",
        seed=0,
        matting=MattingOptions(method="off", radius=9),
        export_formats=("psd", "zip"),
        describer="local",
    )
    back = options_from_proto(options_to_proto(original), Settings())
    assert back == original


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (job_pb2.JobOptions(engine=42), "unknown engine"),
        (job_pb2.JobOptions(layers=10_000), "over the limit"),
        (job_pb2.JobOptions(matting=job_pb2.MattingParameters(eps=-1)), "eps must be positive"),
        (job_pb2.JobOptions(export_formats=[99]), "unknown export format"),
    ],
)
def test_bad_options_are_invalid_input(message: job_pb2.JobOptions, reason: str) -> None:
    with pytest.raises(errors.InvalidInput, match=reason):
        options_from_proto(message, Settings())


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidInput("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Cancelled("x"), grpc.StatusCode.CANCELLED),
        (RuntimeError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    assert status_for(error) == code


def test_blob_store_refuses_uris_outside_its_root(tmp_path) -> None:
    from services.common.blobstore import BlobStore

    blobs = BlobStore(f"file://{tmp_path}/root")
    uri = blobs.put("jobs/a/x.bin", b"123")
    assert blobs.get(uri) == b"123" and blobs.exists(uri)
    with pytest.raises(ValueError, match="not inside"):
        blobs.get(f"file://{tmp_path}/other/x.bin")
    blobs.delete_prefix("jobs/a")
    assert not blobs.exists(uri)
