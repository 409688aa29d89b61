"""ensure_export on a real job folder (write_artifacts in a file:// blob store), and the ZIP it builds."""

from __future__ import annotations

import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import numpy as np
import pytest
from PIL import Image

from samples.synthetic import make_poster
from services.common.blobstore import BlobStore
from services.common.errors import InvalidInput, NotFound
from services.common.manifest import MANIFEST_SCHEMA
from services.exports import build_exports, ensure_export, export_path, export_stem, store, store_exports
from services.ingest.artifacts import JobOutput, write_artifacts


@pytest.fixture
def job(tmp_path):
    """A finished job's files: (blob store, manifest URI, the poster it came from)."""
    poster = make_poster(13, 320, 480)
    blobs = BlobStore(f"file://{tmp_path / 'blobs'}")
    output = JobOutput(
        job_id="job1",
        width=320,
        height=480,
        source_file="Summer Poster (final).png",
        source_sha256="a" * 64,
        engine="classic",
        engine_version="0.1.0",
        trace_id="",
        layers=poster.layers,
    )
    result = write_artifacts(blobs, output, poster.image, time.perf_counter())
    return blobs, result["manifest_uri"], poster


def contents(data: bytes, fmt: str) -> bytes | dict[str, bytes]:
    """The file's content; for a PPTX its parts but the one that records when it was made."""
    if fmt != "pptx":
        return data
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        return {name: package.read(name) for name in package.namelist() if name != "docProps/core.xml"}


@pytest.mark.parametrize("fmt", ["psd", "pptx", "svg"])
def test_builds_once_next_to_the_manifest(job, fmt: str) -> None:
    blobs, manifest_uri, poster = job
    uri = ensure_export(blobs, manifest_uri, fmt)
    assert uri == manifest_uri.replace("manifest.json", f"exports/Summer-Poster-final.{fmt}")
    manifest = json.loads(blobs.get(manifest_uri))
    # Built from the stored files, it is what the in-memory path gives.
    assert contents(blobs.get(uri), fmt) == contents(build_exports(poster.layers, 320, 480, manifest, [fmt])[fmt], fmt)
    # Stored: a second call reuses it even when the layer files are gone.
    blobs.delete_prefix("jobs/job1/layers")
    assert ensure_export(blobs, manifest_uri, fmt.upper()) == uri


def test_zip_holds_the_job_folder_and_the_three_files(job) -> None:
    blobs, manifest_uri, poster = job
    uri = ensure_export(blobs, manifest_uri, "zip")
    stored = json.loads(blobs.get(manifest_uri))
    with zipfile.ZipFile(io.BytesIO(blobs.get(uri))) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
        assert manifest["exports"] == {fmt: f"exports/Summer-Poster-final.{fmt}" for fmt in ("psd", "pptx", "svg")}
        assert manifest["layers"] == stored["layers"]
        assert sorted(names) == sorted(
            ["manifest.json", *[entry["file"] for entry in stored["layers"]], *manifest["exports"].values()]
        )
        for fmt, path in manifest["exports"].items():
            # The ZIP built (and stored) the three files it carries.
            assert archive.read(path) == blobs.get(ensure_export(blobs, manifest_uri, fmt))
        for entry, layer in zip(stored["layers"], poster.layers, strict=True):
            png = archive.read(entry["file"])
            assert png == blobs.get(manifest_uri.replace("manifest.json", entry["file"]))
            rows, cols = layer.bbox.slices()
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)))[rows, cols], layer.rgba)


def test_exports_built_at_job_end_are_where_ensure_export_looks(job) -> None:
    blobs, manifest_uri, poster = job
    manifest = json.loads(blobs.get(manifest_uri))
    files = build_exports(poster.layers, 320, 480, manifest, ["svg", "zip"])
    uris = store_exports(blobs, manifest_uri, manifest, files)
    assert uris == {
        fmt: manifest_uri.replace("manifest.json", export_path(export_stem(manifest), fmt)) for fmt in files
    }
    blobs.delete_prefix("jobs/job1/layers")
    # Found, not rebuilt: the layer files it would need are gone.
    assert ensure_export(blobs, manifest_uri, "zip") == uris["zip"]
    assert blobs.get(ensure_export(blobs, manifest_uri, "svg")) == files["svg"]


def test_concurrent_requests_build_once_and_never_see_a_partial_file(job, monkeypatch) -> None:
    blobs, manifest_uri, _ = job
    builds = []
    real_build = store.build_from_source

    def counted(*args, **kwargs):
        builds.append(args[1])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(store, "build_from_source", counted)
    with ThreadPoolExecutor(max_workers=4) as pool:
        uris = list(pool.map(lambda _: ensure_export(blobs, manifest_uri, "psd"), range(4)))
        contents = [blobs.get(uri) for uri in uris]
    assert builds == [["psd"]]
    assert len(set(uris)) == 1 and all(data == contents[0] for data in contents)


def test_unknown_format_missing_manifest_and_foreign_uri_are_clear_errors(job) -> None:
    blobs, manifest_uri, _ = job
    with pytest.raises(InvalidInput, match="unknown export format 'pdf'; choose one of psd, pptx, svg, zip"):
        ensure_export(blobs, manifest_uri, "pdf")
    with pytest.raises(NotFound, match="no manifest"):
        ensure_export(blobs, manifest_uri.replace("job1", "job2"), "psd")
    with pytest.raises(InvalidInput, match="not inside the blob store"):
        ensure_export(blobs, "file:///etc/manifest.json", "psd")
    with pytest.raises(InvalidInput, match="not inside the blob store"):
        ensure_export(blobs, manifest_uri.replace("jobs/job1", "jobs/job1/../job1"), "psd")


def test_broken_job_files_are_clear_errors(job) -> None:
    blobs, manifest_uri, _ = job
    manifest = json.loads(blobs.get(manifest_uri))
    blobs.put("jobs/job1/layers/" + manifest["layers"][1]["file"].split("/")[1], b"not a png")
    with pytest.raises(InvalidInput, match="is not a readable PNG"):
        ensure_export(blobs, manifest_uri, "svg")
    blobs.delete_prefix("jobs/job1/layers")
    with pytest.raises(NotFound, match="is missing"):
        ensure_export(blobs, manifest_uri, "svg")
    manifest["layers"][0]["bbox"] = [0, 0, 321, 480]
    blobs.put("jobs/job1/manifest.json", json.dumps(manifest).encode())
    with pytest.raises(InvalidInput, match="reaches outside the 320x480 canvas"):
        ensure_export(blobs, manifest_uri, "svg")
    blobs.put("jobs/job1/manifest.json", b'{"version": 1}')
    with pytest.raises(InvalidInput, match="is not a poster-layers manifest"):
        ensure_export(blobs, manifest_uri, "psd")
