"""Loads QwenImageLayeredPipeline from a model directory or hub id onto the configured device."""

from __future__ import annotations

import logging
import os

import torch
from diffusers import QwenImageLayeredPipeline
from huggingface_hub import is_offline_mode
from transformers import Qwen2Tokenizer, Qwen2VLImageProcessorPil, Qwen2VLProcessor

from services.common.errors import FailedPrecondition
from services.decompose.engines.qwen.config import QwenConfig

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class ImageCaptionProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without its video half, which the pipeline never uses.

    transformers 5 builds a Qwen2VLProcessor only with torchvision installed (its video processor needs
    it), and torchvision has no CPU build to pair with the CPU torch. The pipeline's captioning calls
    the processor with text and one image only, which this class handles with the PIL image processor.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def resolve_device(name: str) -> str:
    """`auto` -> cuda when available, else cpu; anything else as given (cuda, cuda:N, cpu)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FailedPrecondition(f"qwen_device is {name!r} but this worker has no CUDA device")
    return name


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """`auto` -> bfloat16 on CUDA, float32 on the CPU (where bf16 matmuls are slow); else the named dtype."""
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if name not in DTYPES:
        raise FailedPrecondition(f"qwen_dtype must be auto, {', '.join(DTYPES)}; got {name!r}")
    return DTYPES[name]


def offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, read now rather than at import."""
    flags = (os.environ.get(name, "").upper() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return is_offline_mode() or any(flag in {"1", "ON", "YES", "TRUE"} for flag in flags)


def load_pipeline(config: QwenConfig, device: str, dtype: torch.dtype) -> QwenImageLayeredPipeline:
    """The pipeline from `config.weights`, on `device` in `dtype` (or offloaded), quantised as configured.

    Raises FailedPrecondition with the reason when the weights cannot be loaded.
    """
    source = config.weights
    local_only = offline()
    try:
        tokenizer = Qwen2Tokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=local_only)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(
            source, subfolder="processor", local_files_only=local_only
        )
        pipeline = QwenImageLayeredPipeline.from_pretrained(
            source,
            tokenizer=tokenizer,
            processor=ImageCaptionProcessor(image_processor, tokenizer),
            dtype=dtype,
            local_files_only=local_only,
        )
    except (OSError, ValueError) as error:
        hint = " (HF_HUB_OFFLINE is set: only a local directory or the hub cache is read)" if local_only else ""
        raise FailedPrecondition(f"the qwen weights {source!r} cannot be loaded{hint}: {error}") from None
    pipeline.set_progress_bar_config(disable=True)
    if config.quantization == "fp8":
        # Weights stored in float8 and cast to the compute dtype layer by layer: about half the memory of bf16.
        pipeline.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    elif config.quantization != "none":
        raise FailedPrecondition(f"qwen_quantization must be none or fp8, got {config.quantization!r}")
    if config.cpu_offload:
        if not device.startswith("cuda"):
            raise FailedPrecondition("qwen_cpu_offload needs a CUDA device")
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.to(device)
    log.info(
        "qwen: loaded %s on %s as %s (offload=%s, quantization=%s)",
        source,
        device,
        dtype,
        config.cpu_offload,
        config.quantization,
    )
    return pipeline
