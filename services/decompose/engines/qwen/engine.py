"""The qwen engine: Qwen-Image-Layered (QwenImageLayeredPipeline, diffusers) on a GPU, or on the CPU."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Iterator

import diffusers
import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, QwenImageLayeredPipeline
from PIL import Image

from services.common.errors import Cancelled, InvalidInput, ResourceExhausted
from services.common.layers import Layer
from services.common.options import JobOptions
from services.decompose.engines.base import CancelCheck, ProgressCallback
from services.decompose.engines.qwen.config import NEGATIVE_PROMPT, QwenConfig, QwenJob, job_parameters
from services.decompose.engines.qwen.frames import frames_to_layers
from services.decompose.engines.qwen.loading import load_pipeline, resolve_device, resolve_dtype
from services.decompose.engines.qwen.memory import MemoryTable, check_memory, cuda_available_bytes, table_path

log = logging.getLogger(__name__)

SLOT_POLL_S = 0.1
"""How often a job waiting for a GPU slot checks whether it was cancelled."""


class QwenEngine:
    """Decomposes an image into `layers` RGBA layers with Qwen-Image-Layered, bottom to top.

    The model is loaded once, when the engine is built. Each job runs the pipeline at resolution 640 or
    1024 (the model's working size keeps the input's aspect ratio), then maps every layer back to the
    input's size and crops it to its visible pixels. The layers come out bottom to top: the model
    composites its layer i over layers 1..i-1 (Qwen-Image-Layered, arXiv 2512.15603, section 3.1).

    `available_memory` returns the bytes a job may allocate on the device; by default, on CUDA, it asks
    torch. With a memory table configured, a job that would not fit fails at once with ResourceExhausted
    instead of running out of memory half-way; one that runs out anyway fails the same way, and the
    engine frees the cache and goes on serving.
    """

    name = "qwen"

    def __init__(self, config: QwenConfig, available_memory: Callable[[], int] | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.version = f"diffusers-{diffusers.__version__}"
        path = table_path(config.memory_table)
        self._table = MemoryTable.load(path) if path else None
        if available_memory is None and self.device.startswith("cuda"):
            available_memory = cuda_available_bytes(self.device)
        self._available_memory = available_memory
        self._slots = threading.BoundedSemaphore(config.max_concurrent_jobs)
        self._pipeline = load_pipeline(config, self.device, self.dtype)
        if self._table is None and self.device.startswith("cuda"):
            log.warning("qwen: POSTER_QWEN_MEMORY_TABLE=none; jobs start without a free-memory check")

    def decompose(
        self,
        image: np.ndarray,
        options: JobOptions,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
    ) -> Iterator[Layer]:
        """Yields the layers of an (H, W, 3) RGB or (H, W, 4) RGBA uint8 image, bottom to top."""
        source = rgba_image(image)
        job = job_parameters(options, self.config)
        with self._slot(is_cancelled):
            self._check_memory(job)
            frames = self._run(job, source, on_progress, is_cancelled)
        yield from frames_to_layers(frames, source.width, source.height)

    @contextlib.contextmanager
    def _slot(self, is_cancelled: CancelCheck) -> Iterator[None]:
        """Holds one of the qwen_max_concurrent_jobs slots; gives up if the job is cancelled while waiting."""
        while not self._slots.acquire(timeout=SLOT_POLL_S):
            if is_cancelled():
                raise Cancelled("decomposition cancelled while waiting for the GPU")
        try:
            yield
        finally:
            self._slots.release()

    def _check_memory(self, job: QwenJob) -> None:
        if self._table is None or self._available_memory is None:
            return
        needed = self._table.job_bytes(
            job.resolution,
            job.layers,
            str(self.dtype).removeprefix("torch."),
            self.config.cpu_offload,
            self.config.quantization,
        )
        what = f"a qwen job at resolution {job.resolution} with {job.layers} layers"
        check_memory(needed, self.config.memory_headroom, self._available_memory(), what)

    def _job_pipeline(self) -> QwenImageLayeredPipeline:
        """A pipeline for one job: the loaded models with a scheduler (and call state) of the job's own.

        With CPU offload the loaded pipeline itself, whose hooks move the models (one job at a time).
        """
        if self.config.cpu_offload:
            return self._pipeline
        components = dict(self._pipeline.components)
        components["scheduler"] = FlowMatchEulerDiscreteScheduler.from_config(self._pipeline.scheduler.config)
        pipeline = QwenImageLayeredPipeline(**components)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def _run(
        self, job: QwenJob, source: Image.Image, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> np.ndarray:
        """The pipeline's (layers, h, w, 4) float frames in [0, 1] for one image."""
        if is_cancelled():
            raise Cancelled("decomposition cancelled")
        pipeline = self._job_pipeline()
        generator = torch.Generator("cpu").manual_seed(job.seed) if job.seed is not None else None

        def step_end(_pipeline: object, step: int, _timestep: object, _tensors: dict) -> dict:
            on_progress(step + 1, job.steps)
            if is_cancelled():
                raise Cancelled("decomposition cancelled")
            return {}

        out_of_memory = False
        try:
            output = pipeline(
                image=source,
                prompt=job.prompt,  # empty: the pipeline captions the image with its text encoder
                negative_prompt=NEGATIVE_PROMPT,
                true_cfg_scale=job.true_cfg_scale,
                layers=job.layers,
                num_inference_steps=job.steps,
                resolution=job.resolution,
                use_en_prompt=job.use_en_prompt,
                generator=generator,
                # diffusers 0.42.1: output_type="latent" raises and num_images_per_prompt > 1 regroups the
                # layers wrongly, so this asks for decoded arrays, one image per call.
                output_type="np",
                num_images_per_prompt=1,
                callback_on_step_end=step_end,
                callback_on_step_end_tensor_inputs=[],
            )
        except torch.OutOfMemoryError:
            out_of_memory = True
        except BaseException:
            self._release(pipeline)
            raise
        if out_of_memory:
            # Outside the except block, so the traceback's frames (and their tensors) are gone first.
            self._release(pipeline)
            raise ResourceExhausted(
                f"the GPU ran out of memory running a qwen job at resolution {job.resolution} with {job.layers} "
                "layers; retry later, or ask for fewer layers or resolution 640"
            )
        return np.asarray(output.images[0])

    def _release(self, pipeline: QwenImageLayeredPipeline) -> None:
        """After a failed job: models back off the GPU (offload) and torch's cached memory freed."""
        if self.config.cpu_offload:
            pipeline.maybe_free_model_hooks()
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def rgba_image(image: np.ndarray) -> Image.Image:
    """The input as a PIL RGBA image (RGB gets opaque alpha); the model's VAE takes four channels."""
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8 or image.size == 0:
        raise InvalidInput(f"expected a non-empty (H, W, 3) or (H, W, 4) uint8 image, got {image.dtype}{image.shape}")
    if image.shape[2] == 3:
        image = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    return Image.fromarray(np.ascontiguousarray(image))
