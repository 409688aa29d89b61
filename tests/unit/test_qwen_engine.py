"""The qwen engine on a tiny random-weight Qwen-Image-Layered pipeline, on the CPU, built offline.

The pipeline runs for real (text encoder, VAE, transformer, scheduler); a 2-step run takes about 20 s
on 2 cores, so one module fixture runs the engine through an out-of-memory failure, a cancellation and
a successful job, in that order, and the tests share what it saw.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from samples.synthetic import make_poster
from services.common.config import Settings
from services.common.errors import Cancelled, FailedPrecondition, InvalidInput, PosterError, ResourceExhausted
from services.common.layers import Layer, LayerKind, composite
from services.common.options import JobOptions
from services.decompose.engines import EngineRegistry
from services.decompose.engines.qwen.config import QwenConfig, job_parameters
from services.decompose.engines.qwen.engine import QwenEngine
from services.decompose.engines.qwen.frames import frames_to_layers
from services.decompose.engines.qwen.memory import MEASURED_TABLE, MemoryEntry, MemoryTable, table_path
from tests.qwen_fixtures import build_tiny_pipeline

WIDTH, HEIGHT = 240, 180  # 4:3, so the pipeline works at 736 x 544 and the layers must be mapped back
GIB = 1024**3


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline, saved with save_pretrained."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("qwen-tiny"))


@pytest.fixture(scope="module")
def memory_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A memory table with an entry for the CPU runs here (float32), 2 GiB at 640 x 2 layers."""
    path = tmp_path_factory.mktemp("qwen-table") / "memory.json"
    entry = {"resolution": 640, "layers": 2, "dtype": "float32", "offload": False, "quantization": "none"}
    path.write_text(json.dumps({"version": 1, "entries": [{**entry, "job_bytes": 2 * GIB}]}))
    return path


@pytest.fixture(scope="module")
def registry(weights: Path) -> EngineRegistry:
    """The engine registry of a worker with the tiny weights configured."""
    return EngineRegistry(Settings(qwen_weights=str(weights)))


@dataclass
class Outcome:
    """What the engine did: an out-of-memory job, a cancelled job, then a successful one (captioned)."""

    out_of_memory: PosterError
    cancelled: PosterError
    cancelled_progress: list[tuple[int, int]]
    layers: list[Layer]
    progress: list[tuple[int, int]] = field(default_factory=list)


def _raise_out_of_memory(*_args: object, **_kwargs: object) -> None:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@pytest.fixture(scope="module")
def outcome(registry: EngineRegistry) -> Outcome:
    engine = registry.get("qwen")
    poster = make_poster(5, width=WIDTH, height=HEIGHT).image
    options = JobOptions(engine="qwen", layers=2, steps=2, seed=7, prompt="a poster")

    transformer = engine._pipeline.transformer
    transformer.forward = _raise_out_of_memory  # the first denoising step runs out of GPU memory
    try:
        with pytest.raises(ResourceExhausted) as out_of_memory:
            list(engine.decompose(poster, options, lambda *_: None, lambda: False))
    finally:
        del transformer.forward

    cancelled_progress: list[tuple[int, int]] = []
    with pytest.raises(Cancelled) as cancelled:
        list(
            engine.decompose(
                poster,
                JobOptions(layers=2, steps=3, prompt="a poster"),
                lambda step, total: cancelled_progress.append((step, total)),
                lambda: bool(cancelled_progress),  # cancelled once the first step reported
            )
        )

    # An empty prompt: the pipeline captions the image with its text encoder first (the processor path).
    captioned = JobOptions(engine="qwen", layers=2, steps=2, seed=7, use_en_prompt=True)
    progress: list[tuple[int, int]] = []
    layers = list(
        engine.decompose(poster, captioned, lambda step, total: progress.append((step, total)), lambda: False)
    )
    return Outcome(out_of_memory.value, cancelled.value, cancelled_progress, layers, progress)


def test_the_registry_loads_the_qwen_engine_once_from_the_saved_weights(registry: EngineRegistry) -> None:
    engine = registry.get("qwen")
    assert isinstance(engine, QwenEngine) and engine.name == "qwen" and engine.device == "cpu"
    assert engine.dtype == torch.float32  # auto: float32 on the CPU
    assert registry.get("qwen") is engine
    assert engine._pipeline.vae.config.input_channels == 4
    assert engine._pipeline.transformer.config.use_layer3d_rope


def test_a_job_without_a_prompt_yields_the_requested_layers_mapped_to_the_input_canvas(outcome: Outcome) -> None:
    layers = outcome.layers
    assert [layer.index for layer in layers] == [0, 1]
    assert [layer.kind for layer in layers] == [LayerKind.BACKGROUND, LayerKind.IMAGE]
    for layer in layers:
        box = layer.bbox
        assert box.x >= 0 and box.y >= 0 and box.x + box.w <= WIDTH and box.y + box.h <= HEIGHT
        assert layer.rgba.shape == (box.h, box.w, 4) and layer.rgba.dtype == np.uint8
        # Cropped to the visible pixels: the box's edge rows and columns hold some alpha.
        alpha = layer.rgba[..., 3]
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()
    assert composite(layers, WIDTH, HEIGHT).shape == (HEIGHT, WIDTH, 3)


def test_progress_reports_each_denoising_step(outcome: Outcome) -> None:
    assert outcome.progress == [(1, 2), (2, 2)]


def test_out_of_memory_fails_the_job_with_a_reason_and_the_engine_keeps_serving(outcome: Outcome) -> None:
    message = str(outcome.out_of_memory)
    assert "ran out of memory" in message and "resolution 640" in message and "2 layers" in message
    assert len(outcome.layers) == 2  # the jobs after it ran


def test_cancelling_stops_the_denoising_loop_at_the_next_step(outcome: Outcome) -> None:
    assert outcome.cancelled_progress == [(1, 3)]
    assert "cancelled" in str(outcome.cancelled)


def test_resolution_other_than_640_or_1024_is_invalid_input_before_the_pipeline_runs(
    registry: EngineRegistry,
) -> None:
    engine = registry.get("qwen")
    image = np.zeros((32, 32, 3), np.uint8)
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="resolution 640 or 1024"):
        list(engine.decompose(image, JobOptions(resolution=800), lambda *_: None, lambda: False))
    assert time.perf_counter() - started < 1.0


def test_bad_images_are_invalid_input(registry: EngineRegistry) -> None:
    engine = registry.get("qwen")
    for image in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 2), np.uint8), np.zeros((8, 8, 3), np.float32)):
        with pytest.raises(InvalidInput):
            list(engine.decompose(image, JobOptions(), lambda *_: None, lambda: False))


def test_a_job_that_does_not_fit_in_free_gpu_memory_fails_before_running(weights: Path, memory_table: Path) -> None:
    config = QwenConfig(weights=str(weights), memory_table=str(memory_table), memory_headroom=1.25)
    engine = QwenEngine(config, available_memory=lambda: 2 * GIB)  # the table says 2 GiB, x 1.25 headroom
    image = np.zeros((64, 64, 3), np.uint8)
    started = time.perf_counter()
    with pytest.raises(ResourceExhausted, match=r"needs about 2\.5 GiB .* 2\.0 GiB are free"):
        list(engine.decompose(image, JobOptions(layers=2), lambda *_: None, lambda: False))
    # Three layers, one 2-layer entry: scaled by the latent frames, (3 + 2) / (2 + 2).
    with pytest.raises(ResourceExhausted, match=r"needs about 3\.1 GiB"):
        list(engine.decompose(image, JobOptions(layers=3), lambda *_: None, lambda: False))
    assert time.perf_counter() - started < 1.0


def test_a_job_cancelled_while_waiting_for_the_gpu_slot_stops(registry: EngineRegistry) -> None:
    engine = registry.get("qwen")
    image = np.zeros((32, 32, 3), np.uint8)
    with engine._slot(lambda: False), pytest.raises(Cancelled, match="waiting for the GPU"):
        list(engine.decompose(image, JobOptions(), lambda *_: None, lambda: True))


def test_fp8_stores_the_transformer_weights_in_float8(weights: Path) -> None:
    engine = QwenEngine(QwenConfig(weights=str(weights), quantization="fp8"))
    block = engine._pipeline.transformer.transformer_blocks[0]
    assert block.attn.to_q.weight.dtype == torch.float8_e4m3fn
    assert engine._pipeline.vae.dtype == torch.float32


def test_missing_weights_are_a_failed_precondition_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="cannot be loaded"):
        QwenEngine(QwenConfig(weights=str(tmp_path / "nowhere")))


def test_a_hub_id_with_hf_hub_offline_reads_only_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(FailedPrecondition, match="HF_HUB_OFFLINE is set"):
        QwenEngine(QwenConfig(weights="Qwen/Qwen-Image-Layered"))
    assert time.perf_counter() - started < 10.0


def test_cpu_offload_needs_cuda(weights: Path) -> None:
    with pytest.raises(FailedPrecondition, match="CUDA"):
        QwenEngine(QwenConfig(weights=str(weights), device="cpu", cpu_offload=True))


def test_job_parameters_take_the_configured_defaults_and_check_limits() -> None:
    config = QwenConfig(weights="w", default_layers=5, default_steps=40, max_steps=60, default_true_cfg_scale=3.0)
    job = job_parameters(JobOptions(prompt="  a cat  ", seed=3, use_en_prompt=True), config)
    assert (job.layers, job.resolution, job.steps, job.true_cfg_scale) == (5, 640, 40, 3.0)
    assert (job.prompt, job.seed, job.use_en_prompt) == ("a cat", 3, True)
    assert job_parameters(JobOptions(resolution=1024, steps=60, layers=2), config).resolution == 1024
    for options, reason in (
        (JobOptions(resolution=768), "resolution"),
        (JobOptions(steps=61), "steps"),
        (JobOptions(steps=-1), "steps"),
        (JobOptions(layers=-2), "layers"),
        (JobOptions(true_cfg_scale=-1.0), "true_cfg_scale"),
    ):
        with pytest.raises(InvalidInput, match=reason):
            job_parameters(options, config)


def test_misconfiguration_is_a_failed_precondition() -> None:
    for fields, reason in (
        ({"weights": ""}, "POSTER_QWEN_WEIGHTS"),
        ({"default_resolution": 800}, "640 or 1024"),
        ({"cpu_offload": True, "max_concurrent_jobs": 2}, "one job at a time"),
        ({"max_concurrent_jobs": 0}, "at least 1"),
        ({"memory_headroom": 0.5}, "headroom"),
    ):
        with pytest.raises(FailedPrecondition, match=reason):
            QwenConfig(**{"weights": "w", **fields})


def test_qwen_without_weights_is_refused_and_auto_needs_cuda_and_weights(weights: Path) -> None:
    with pytest.raises(FailedPrecondition, match="not configured"):
        EngineRegistry(Settings(qwen_weights="")).get("qwen")
    assert EngineRegistry(Settings(qwen_weights="")).resolve("auto") == "classic"
    configured = EngineRegistry(Settings(qwen_weights=str(weights)))
    assert configured.resolve("auto") == ("qwen" if torch.cuda.is_available() else "classic")
    assert configured.resolve("classic") == "classic" and configured.resolve("qwen") == "qwen"
    with pytest.raises(InvalidInput, match="unknown engine"):
        configured.resolve("magic")


def _table(*points: tuple[int, int], resolution: int = 640) -> MemoryTable:
    entries = (MemoryEntry(resolution, layers, "bfloat16", False, "none", size) for layers, size in points)
    return MemoryTable(tuple(entries))


def test_memory_table_interpolates_extrapolates_and_matches_the_setting() -> None:
    table = _table((2, 200), (4, 300), (8, 500))
    lookup = lambda layers, **kw: table.job_bytes(  # noqa: E731
        kw.get("resolution", 640), layers, kw.get("dtype", "bfloat16"), kw.get("offload", False), "none"
    )
    assert lookup(4) == 300 and lookup(3) == 250 and lookup(6) == 400
    assert lookup(10) == 600  # past the largest: the slope of the last two
    assert lookup(1) == 200  # below the smallest: the smallest (memory grows with layers)
    assert lookup(4, resolution=1024) is None and lookup(4, dtype="float16") is None and lookup(4, offload=True) is None
    assert _table((4, 600)).job_bytes(640, 10, "bfloat16", False, "none") == 1200  # (10 + 2) / (4 + 2)


def test_memory_table_files_load_and_unreadable_ones_are_a_failed_precondition(tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    entry = {"resolution": 1024, "layers": 4, "dtype": "float16", "offload": True, "job_bytes": 7}
    path.write_text(json.dumps({"version": 1, "device": "GPU", "entries": [entry]}))
    table = MemoryTable.load(path)
    assert table.device == "GPU" and table.job_bytes(1024, 4, "float16", True, "none") == 7
    for text in ("{", json.dumps({"entries": [{"layers": 4}]})):
        path.write_text(text)
        with pytest.raises(FailedPrecondition, match="memory table"):
            MemoryTable.load(path)
    with pytest.raises(FailedPrecondition, match="memory table"):
        MemoryTable.load(tmp_path / "missing.json")


def test_the_shipped_table_is_the_h200_measurement_and_grows_with_layers_and_resolution() -> None:
    assert table_path("") == MEASURED_TABLE and table_path("none") is None and table_path("/t.json") == Path("/t.json")
    table = MemoryTable.load(MEASURED_TABLE)
    assert "H200" in table.device
    for dtype in ("bfloat16", "float16"):
        at = {
            (res, layers): table.job_bytes(res, layers, dtype, False, "none")
            for res in (640, 1024)
            for layers in (2, 4, 6, 8)
        }
        assert all(value is not None for value in at.values())
        for res in (640, 1024):
            assert at[res, 2] < at[res, 4] < at[res, 6] < at[res, 8]
        assert all(at[1024, layers] > 2 * at[640, layers] for layers in (2, 4, 8))
        assert 10 * GIB < at[1024, 4] < 25 * GIB  # 17.8 GB measured on top of ~58 GB of resident models
    # With offload the models themselves count as the job's: about the transformer's 41 GB plus activations.
    assert 35 * GIB < table.job_bytes(640, 4, "bfloat16", True, "none") < 45 * GIB


def test_an_engine_without_a_configured_table_checks_against_the_shipped_one(weights: Path) -> None:
    engine = QwenEngine(QwenConfig(weights=str(weights), dtype="bfloat16"), available_memory=lambda: 8 * GIB)
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ResourceExhausted, match=r"resolution 1024 with 4 layers needs about 18\.2 GiB"):
        list(engine.decompose(image, JobOptions(layers=4, resolution=1024), lambda *_: None, lambda: False))
    unchecked = QwenEngine(QwenConfig(weights=str(weights), memory_table="none"), available_memory=lambda: 0)
    assert unchecked._table is None


def test_frames_are_resized_to_the_input_cropped_and_empty_ones_dropped() -> None:
    frames = np.zeros((3, 64, 128, 4), np.float32)
    frames[0] = (0.2, 0.4, 0.6, 1.0)  # opaque background
    frames[2, 16:32, 64:96] = (1.0, 0.0, 0.0, 1.0)  # a red box; frame 1 is empty
    frames[2, :, :, 1] = 1.0  # green hidden under zero alpha must not bleed into the box's edges
    frames[2, 16:32, 64:96, 1] = 0.0
    layers = frames_to_layers(frames, 256, 128)
    assert [layer.index for layer in layers] == [0, 1]
    assert [layer.kind for layer in layers] == [LayerKind.BACKGROUND, LayerKind.IMAGE]
    background, box = layers
    assert background.bbox.as_list() == [0, 0, 256, 128] and (background.rgba == (51, 102, 153, 255)).all()
    # Upscaled 2x: the opaque core lands at (128, 32, 64, 32); the crop adds at most the kernel's faint tails.
    rows, cols = np.nonzero(box.rgba[..., 3] == 255)
    core = [box.bbox.x + cols.min(), box.bbox.y + rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1]
    assert np.abs(np.subtract(core, [128, 32, 64, 32])).max() <= 2
    assert 0 < 128 - box.bbox.x <= 4 and 0 < box.bbox.w - 64 <= 8
    visible = box.rgba[box.rgba[..., 3] > 0]
    assert (visible[:, 1] == 0).all() and (visible[:, 0] == 255).all()
