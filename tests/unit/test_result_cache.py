"""The result cache's rules: the key, what bypasses it, what may be stored, and when an entry is stale.

Lookups and stores run on fakeredis here (the in-process Redis the CLI falls back to, behind the same
code); tests/integration/test_result_cache_mesh.py runs the whole thing on the real mesh and redis-server.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import fakeredis
import numpy as np
import pytest
from google.protobuf import json_format
from PIL import Image

from poster.v1 import job_pb2
from services.common.config import Settings
from services.common.jobstore import JobRecord
from services.decompose.engines import versions
from services.ingest.result_cache import (
    CacheEntry,
    ResultCache,
    bypass_reason,
    cache_key,
    current_fingerprint,
    engine_fingerprint,
    job_options,
    pixel_sha256,
    png_pixel_sha256,
    storable,
)
from services.ingest.validation import validate_upload

SETTINGS = Settings(redis_url="", qwen_weights="")


def poster(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.empty((48, 64, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    image[10:30, 12:40] = rng.integers(0, 256, 3)
    return image


def encoded(pixels: np.ndarray, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **params)
    return out.getvalue()


def validated_pixels(data: bytes, filename: str) -> str:
    """The pixel hash of an upload as ingest computes it: validated, re-encoded, decoded."""
    return png_pixel_sha256(validate_upload(data, filename).png_bytes)


def options(**fields: object) -> dict:
    """Job options as a job record holds them (the proto as a JSON dict)."""
    return json_format.MessageToDict(job_pb2.JobOptions(**fields))


def key_of(pixels: str, record_options: dict, owner: str | None = None, settings: Settings = SETTINGS) -> str:
    domain, _ = job_options(record_options, settings)
    return cache_key(pixels, domain, owner)


def test_the_same_pixels_in_another_lossless_container_have_the_same_key_a_jpeg_re_encode_not() -> None:
    image = poster()
    as_png = validated_pixels(encoded(image, "PNG"), "a.png")
    assert validated_pixels(encoded(image, "WEBP", lossless=True), "b.webp") == as_png
    assert validated_pixels(encoded(image, "PNG", compress_level=9), "c.png") == as_png
    # Fully opaque RGBA is the same picture as RGB: the engines see the same pixels.
    opaque = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    assert validated_pixels(encoded(opaque, "PNG"), "d.png") == as_png
    assert validated_pixels(encoded(image, "JPEG", quality=95), "e.jpg") != as_png


def test_one_pixel_or_the_canvas_shape_changes_the_pixel_hash() -> None:
    rgba = np.dstack([poster(), np.full((48, 64), 255, np.uint8)])
    changed = rgba.copy()
    changed[47, 63, 0] ^= 1
    assert pixel_sha256(changed) != pixel_sha256(rgba)
    translucent = rgba.copy()
    translucent[0, 0, 3] = 254
    assert pixel_sha256(translucent) != pixel_sha256(rgba)
    # The same bytes as another shape are another image.
    assert pixel_sha256(rgba.reshape(64, 48, 4)) != pixel_sha256(rgba)
    with pytest.raises(ValueError, match="RGBA"):
        pixel_sha256(poster())


def test_the_key_ignores_option_order_defaults_spelled_out_and_export_formats() -> None:
    pixels = pixel_sha256(np.zeros((16, 16, 4), np.uint8))
    base = options(layers=4, engine=job_pb2.ENGINE_CLASSIC, export_formats=[job_pb2.EXPORT_FORMAT_PSD])
    reordered = dict(reversed(list(base.items())))
    assert list(reordered) != list(base)
    assert key_of(pixels, reordered) == key_of(pixels, base)
    other_exports = options(layers=4, engine=job_pb2.ENGINE_CLASSIC, export_formats=[job_pb2.EXPORT_FORMAT_ZIP])
    assert key_of(pixels, other_exports) == key_of(pixels, base)
    # Zero means "service default": the default written out is the same job.
    defaults = SETTINGS.matting_defaults
    spelled = options(
        layers=4,
        engine=job_pb2.ENGINE_CLASSIC,
        describer=SETTINGS.default_describer,
        matting=job_pb2.MattingParameters(method=job_pb2.MATTING_METHOD_GUIDED, radius=defaults.radius),
    )
    assert key_of(pixels, spelled) == key_of(pixels, base)


@pytest.mark.parametrize(
    "change",
    [
        {"layers": 5},
        {"engine": job_pb2.ENGINE_AUTO},
        {"resolution": 1024},
        {"steps": 20},
        {"seed": 7},
        {"prompt": "a sale poster"},
        {"true_cfg_scale": 2.5},
        {"use_en_prompt": True},
        {"describer": "gemini"},
        {"matting": job_pb2.MattingParameters(method=job_pb2.MATTING_METHOD_OFF)},
        {"matting": job_pb2.MattingParameters(radius=9)},
        {"matting": job_pb2.MattingParameters(eps=1e-3)},
    ],
    ids=[
        "layers", "engine", "resolution", "steps", "seed", "prompt", "cfg", "en_prompt", "describer",
        "matting_off", "matting_radius", "matting_eps",
    ],
)  # fmt: skip
def test_every_option_that_changes_the_layers_changes_the_key(change: dict) -> None:
    pixels = pixel_sha256(np.zeros((16, 16, 4), np.uint8))
    base = {"layers": 4, "engine": job_pb2.ENGINE_CLASSIC}
    assert key_of(pixels, options(**(base | change))) != key_of(pixels, options(**base))


def test_no_cache_is_not_part_of_the_key_and_owners_have_their_own_keys_unless_shared() -> None:
    pixels = pixel_sha256(np.zeros((16, 16, 4), np.uint8))
    assert job_options(options(no_cache=True), SETTINGS)[1] is True
    assert key_of(pixels, options(no_cache=True)) == key_of(pixels, options())
    assert key_of(pixels, options(), "alice") != key_of(pixels, options(), "bob")
    assert key_of(pixels, options(), None) not in {key_of(pixels, options(), "alice"), key_of(pixels, options(), "")}


def test_unseeded_qwen_is_never_looked_up_nor_stored_classic_always_is() -> None:
    def domain(**fields: object):
        return job_options(options(**fields), SETTINGS)[0]

    qwen, classic, auto = job_pb2.ENGINE_QWEN, job_pb2.ENGINE_CLASSIC, job_pb2.ENGINE_AUTO
    assert "unseeded qwen" in bypass_reason(domain(engine=qwen), enabled=True, no_cache=False)
    assert bypass_reason(domain(engine=qwen, seed=0), enabled=True, no_cache=False) == ""
    assert bypass_reason(domain(engine=classic), enabled=True, no_cache=False) == ""
    # auto may run classic (deterministic): looked up; stored only if classic is what ran.
    assert bypass_reason(domain(engine=auto), enabled=True, no_cache=False) == ""
    assert not storable("qwen", domain(engine=auto))
    assert storable("classic", domain(engine=auto))
    assert storable("qwen", domain(engine=auto, seed=3))
    assert storable("classic", domain(engine=classic, seed=3)) and storable("classic", domain(engine=classic))
    assert not storable("", domain(engine=classic))
    assert "no_cache" in bypass_reason(domain(engine=classic), enabled=True, no_cache=True)
    assert "POSTER_RESULT_CACHE_ENABLED" in bypass_reason(domain(engine=classic), enabled=False, no_cache=False)


def test_an_engine_version_change_makes_the_entry_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = engine_fingerprint("classic", "classic", versions.CLASSIC_ENGINE_VERSION, SETTINGS)
    assert current_fingerprint("classic", "classic", SETTINGS) == stored
    monkeypatch.setattr(versions, "CLASSIC_ENGINE_VERSION", "99.0.0")
    assert current_fingerprint("classic", "classic", SETTINGS) != stored
    assert current_fingerprint("classic", "an engine nobody knows", SETTINGS) is None


def test_qwen_entries_depend_on_the_weights_and_auto_entries_on_whether_qwen_is_configured() -> None:
    qwen_a = SETTINGS.model_copy(update={"qwen_weights": "/models/a"})
    qwen_b = SETTINGS.model_copy(update={"qwen_weights": "/models/b"})
    stored = engine_fingerprint("qwen", "qwen", versions.current_engine_version("qwen") or "", qwen_a)
    assert current_fingerprint("qwen", "qwen", qwen_a) == stored
    assert current_fingerprint("qwen", "qwen", qwen_b) != stored
    assert current_fingerprint("qwen", "qwen", qwen_a.model_copy(update={"qwen_default_steps": 8})) != stored
    # classic asked for by name does not care about qwen; auto does: switching qwen on changes what auto means.
    assert current_fingerprint("classic", "classic", SETTINGS) == current_fingerprint("classic", "classic", qwen_a)
    assert current_fingerprint("auto", "classic", SETTINGS) != current_fingerprint("auto", "classic", qwen_a)
    assert current_fingerprint("auto", "classic", qwen_a) != current_fingerprint("auto", "classic", qwen_b)


def test_the_engines_report_the_versions_ingest_expects(tmp_path: Path) -> None:
    from services.decompose.engines.classic import ClassicEngine

    assert ClassicEngine.version == versions.CLASSIC_ENGINE_VERSION, "bump CLASSIC_ENGINE_VERSION with the engine"
    pytest.importorskip("diffusers")  # the qwen extra; scripts/setup.sh installs it for the tests
    from services.decompose.engines.qwen.config import QwenConfig
    from services.decompose.engines.qwen.engine import QwenEngine
    from tests.qwen_fixtures import build_tiny_pipeline

    engine = QwenEngine(QwenConfig(weights=str(build_tiny_pipeline(tmp_path))))
    assert engine.version == versions.current_engine_version("qwen")


def test_without_diffusers_installed_the_qwen_version_is_the_pinned_one(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = versions.diffusers_version()
    real_version = versions.importlib.metadata.version

    def version(name: str) -> str:
        if name == "diffusers":
            raise versions.importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(versions.importlib.metadata, "version", version)
    # The CPU image runs ingest without the qwen extra: the pin in this package's metadata stands in.
    assert versions.diffusers_version() == installed
    monkeypatch.setattr(versions.importlib.metadata, "requires", lambda name: ["numpy==2.0"])
    assert versions.diffusers_version() is None and versions.current_engine_version("qwen") is None


@pytest.fixture
def redis() -> fakeredis.FakeAsyncRedis:
    return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)


def png(seed: int = 0) -> bytes:
    return encoded(poster(seed), "PNG")


def succeeded(record: JobRecord, engine: str, version: str) -> dict:
    """The runner's result record of a succeeded job, as far as the cache reads it."""
    manifest_uri = f"file:///blobs/jobs/{record.id}/manifest.json"
    return {"manifest_uri": manifest_uri, "engine": engine, "engine_version": version}


async def test_a_stored_result_is_found_until_its_ttl_and_only_under_its_key(redis) -> None:
    cache = ResultCache(redis, SETTINGS.model_copy(update={"result_cache_ttl_s": 90}))
    record_options = options(engine=job_pb2.ENGINE_CLASSIC, layers=3)
    first = await cache.probe(record_options, png(), "alice")
    assert first.outcome == "miss" and first.key and first.entry is None
    record = JobRecord(id="job-1", owner="alice", options=record_options, cache_key=first.key)
    assert await cache.remember(record, succeeded(record, "classic", versions.CLASSIC_ENGINE_VERSION))
    assert 0 < await redis.ttl(f"poster:rcache:{first.key}") <= 90

    again = await cache.probe(record_options, png(), "alice")
    assert again.outcome == "hit" and again.key == first.key
    assert again.entry is not None and again.entry.job_id == "job-1" and again.entry.engine == "classic"
    assert again.entry.manifest_uri.endswith("/jobs/job-1/manifest.json")
    assert (await cache.probe(record_options, png(), "bob")).outcome == "miss"
    assert (await cache.probe(record_options, png(seed=1), "alice")).outcome == "miss"
    assert (await cache.probe(options(engine=job_pb2.ENGINE_CLASSIC, layers=4), png(), "alice")).outcome == "miss"
    bypass = await cache.probe(options(engine=job_pb2.ENGINE_CLASSIC, layers=3, no_cache=True), png(), "alice")
    assert bypass.outcome == "bypass" and bypass.key == "" and "no_cache" in bypass.reason


async def test_a_shared_cache_serves_every_owner(redis) -> None:
    cache = ResultCache(redis, SETTINGS.model_copy(update={"result_cache_shared": True}))
    first = await cache.probe(options(), png(), "alice")
    record = JobRecord(id="job-1", owner="alice", options=options(), cache_key=first.key)
    assert await cache.remember(record, succeeded(record, "classic", versions.CLASSIC_ENGINE_VERSION))
    assert (await cache.probe(options(), png(), "bob")).outcome == "hit"


async def test_stale_entries_and_what_is_never_stored(redis, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ResultCache(redis, SETTINGS)
    seeded_auto = options(seed=5)
    probe = await cache.probe(seeded_auto, png(), "")
    record = JobRecord(id="job-1", options=seeded_auto, cache_key=probe.key)
    assert await cache.remember(record, succeeded(record, "classic", versions.CLASSIC_ENGINE_VERSION))
    monkeypatch.setattr(versions, "CLASSIC_ENGINE_VERSION", "99.0.0")
    assert (await cache.probe(seeded_auto, png(), "")).outcome == "stale"
    monkeypatch.undo()
    assert (await cache.probe(seeded_auto, png(), "")).outcome == "hit"
    await redis.set(f"poster:rcache:{probe.key}", "{not json")
    assert (await cache.probe(seeded_auto, png(), "")).outcome == "stale"

    unseeded_auto = options()
    probe = await cache.probe(unseeded_auto, png(), "")
    assert probe.outcome == "miss"
    record = JobRecord(id="job-2", options=unseeded_auto, cache_key=probe.key)
    assert not await cache.remember(record, succeeded(record, "qwen", "diffusers-0.42.1"))
    assert await redis.get(f"poster:rcache:{probe.key}") is None
    assert not await cache.remember(JobRecord(id="job-3", options=seeded_auto), succeeded(record, "classic", "0.1.0"))
    off = ResultCache(redis, SETTINGS.model_copy(update={"result_cache_enabled": False}))
    assert (await off.probe(seeded_auto, png(), "")).outcome == "bypass"
    assert not await off.remember(JobRecord(id="job-4", options=seeded_auto, cache_key=probe.key), {})


def test_entries_round_trip_and_damaged_ones_are_refused() -> None:
    entry = CacheEntry("job-1", "file:///b/jobs/job-1/manifest.json", "classic", '{"engine":"classic"}', 1.5)
    assert CacheEntry.from_json(entry.to_json()) == entry
    assert json.loads(entry.to_json())["job_id"] == "job-1"
    for damaged in ("{", "[]", '{"job_id": "x"}'):
        with pytest.raises(ValueError, match="not a result cache entry"):
            CacheEntry.from_json(damaged)


async def test_a_hit_builds_the_exports_its_job_asks_for_as_a_run_would(redis) -> None:
    psd = options(export_formats=[job_pb2.EXPORT_FORMAT_PSD])
    for settings, expected in ((SETTINGS, ("psd",)), (SETTINGS.model_copy(update={"exports_at_job_end": False}), ())):
        cache = ResultCache(redis, settings)
        probe = await cache.probe(psd, png(), "")
        record = JobRecord(id="job-1", options=options(), cache_key=probe.key)
        assert await cache.remember(record, succeeded(record, "classic", versions.CLASSIC_ENGINE_VERSION))
        hit = await cache.probe(psd, png(), "")
        assert hit.outcome == "hit" and hit.exports == expected


def test_the_cli_has_a_no_cache_flag() -> None:
    from services.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["decompose", "a.png", "-o", "out", "--no-cache"]).no_cache is True
    assert parser.parse_args(["decompose", "a.png", "-o", "out"]).no_cache is False
