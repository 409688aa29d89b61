"""The qwen engine on a GPU: seconds per denoising step, peak memory and model FLOP utilisation (JSON).

Runs QwenImageLayeredPipeline on full-size random weights (the released architecture, so the same
compute as the real model, with no download) built on the GPU from the public configuration, or from
the config files of a local model directory (--model-dir; its weights are not read). For each
configuration (resolution x dtype x CPU offload, 4 layers by default): one warm-up call of one step,
which also counts the transformer's FLOPs per step, then a call of 1 + --steps steps whose last
--steps step intervals are timed. The prompt is fixed: captioning with random weights would run to its
token limit.

    python -m bench.qwen_gpu [--model-dir DIR] [--resolutions 640,1024] [--layers 4] [--steps 3]
                             [--dtypes bfloat16,float16] [--offload off,on] [--table-layers 2,4,8]
                             [--table memory.json] [--peak-tflops N]

--table writes the engine's memory table (POSTER_QWEN_MEMORY_TABLE, see
services/decompose/engines/qwen/memory.py) with every configuration measured, plus one-step runs
at each --table-layers count. It refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from accelerate import init_empty_weights
from accelerate.utils import set_module_tensor_to_device
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageLayeredPipeline,
    QwenImageTransformer2DModel,
)
from PIL import Image
from tokenizers import pre_tokenizers
from torch.utils.flop_counter import FlopCounterMode
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer

PROMPT = (
    "A flat graphic poster: a blue gradient background, a white rounded panel, a product photo of a red "
    "sneaker, and the title SUMMER SALE in bold white letters above a smaller line of text."
)
NEGATIVE_PROMPT = " "
TRUE_CFG_SCALE = 4.0

# The released model as publicly described: 60 dual-stream blocks, 24 heads of 128, text dim 3584.
PUBLIC_TRANSFORMER = {
    "patch_size": 2,
    "in_channels": 64,
    "out_channels": 16,
    "num_layers": 60,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 3584,
    "guidance_embeds": False,
    "axes_dims_rope": [16, 56, 56],
    "use_layer3d_rope": True,
    "use_additional_t_cond": True,
}
PUBLIC_VAE = {"z_dim": 16, "input_channels": 4}  # the rest as AutoencoderKLQwenImage's defaults (Qwen-Image's VAE)
# Qwen2.5-VL-7B-Instruct's published configuration.
PUBLIC_TEXT_ENCODER = {
    "text_config": {
        "vocab_size": 152064,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1_000_000.0},
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    },
    "vision_config": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "tokens_per_second": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}
# Dense bf16/fp16 tensor-core peak, FLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_FLOPS = (
    ("H200", 989.4e12),
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989.4e12),
    ("A100", 312e12),
    ("L40S", 362e12),
)
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# Qwen2's special tokens, in their released order.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def byte_level_tokenizer() -> Qwen2Tokenizer:
    """A Qwen2 tokenizer with no downloads: byte-level BPE without merges (one token per byte) + Qwen's specials."""
    vocab = {symbol: index for index, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for token in QWEN_SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    return Qwen2Tokenizer(vocab=vocab, merges=[], extra_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]))


def model_configs(model_dir: Path | None) -> tuple[dict, dict, Qwen2_5_VLConfig]:
    """Transformer, VAE and text-encoder configurations: from `model_dir`'s config files, else the public ones."""
    if model_dir is None:
        return dict(PUBLIC_TRANSFORMER), dict(PUBLIC_VAE), Qwen2_5_VLConfig(**PUBLIC_TEXT_ENCODER)
    transformer = dict(QwenImageTransformer2DModel.load_config(model_dir, subfolder="transformer"))
    vae = dict(AutoencoderKLQwenImage.load_config(model_dir, subfolder="vae"))
    text_encoder = Qwen2_5_VLConfig.from_pretrained(model_dir / "text_encoder")
    return transformer, vae, text_encoder


def materialise(model: torch.nn.Module, device: str, dtype: torch.dtype, generator: torch.Generator) -> None:
    """Gives a model built on the meta device random weights in `dtype` on `device`, one tensor at a time.

    Matrices ~ N(0, 1/fan_in) keep activations in range through the blocks; 1-D weights (norms) are
    ones and biases zeros. Buffers, built for real, move to `device`.
    """
    for name, parameter in list(model.named_parameters()):
        value = torch.empty(parameter.shape, dtype=dtype, device=device)
        if parameter.ndim >= 2:
            value.normal_(0.0, parameter[0].numel() ** -0.5, generator=generator)
        elif name.endswith("bias"):
            value.zero_()
        else:
            value.fill_(1.0)
        set_module_tensor_to_device(model, name, device, value=value, dtype=dtype, clear_cache=False)
    model.to(device)


def random_pipeline(model_dir: Path | None, device: str, dtype: torch.dtype, seed: int = 0) -> QwenImageLayeredPipeline:
    """The full pipeline with random weights built directly on `device` (no full-size copy in host memory)."""
    transformer_config, vae_config, text_config = model_configs(model_dir)
    generator = torch.Generator(device).manual_seed(seed)
    with init_empty_weights():
        transformer = QwenImageTransformer2DModel.from_config(transformer_config)
        text_encoder = Qwen2_5_VLForConditionalGeneration(text_config)
    materialise(transformer, device, dtype, generator)
    materialise(text_encoder, device, dtype, generator)
    vae = AutoencoderKLQwenImage.from_config(vae_config).to(device, dtype)  # ~0.1 B parameters: built for real
    if model_dir is not None and (model_dir / "tokenizer").is_dir():
        tokenizer = Qwen2Tokenizer.from_pretrained(model_dir, subfolder="tokenizer")
    else:
        tokenizer = byte_level_tokenizer()
    pipeline = QwenImageLayeredPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        processor=None,  # only the captioning of an empty prompt uses it; the prompt here is fixed
        transformer=transformer.eval(),
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def poster_image(size: int = 1024) -> Image.Image:
    """A square RGBA test image (a gradient with two panels), so each resolution bucket is used at its size.

    The content does not change the compute; this avoids the repo's font-dependent poster generator.
    """
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    rgb = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (size, 1)), np.full((size, size), 160.0)], axis=-1)
    rgb[size // 8 : size // 3, size // 8 : -size // 8] = (250, 250, 240)
    rgb[size // 2 : -size // 6, size // 4 : size // 2] = (200, 40, 40)
    alpha = np.full((size, size, 1), 255.0)
    return Image.fromarray(np.concatenate([rgb, alpha], axis=-1).astype(np.uint8))


def synchronise(device: str) -> None:
    """Waits for the device's queued work, so wall-clock times cover it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def run(
    pipeline: QwenImageLayeredPipeline,
    image: Image.Image,
    resolution: int,
    layers: int,
    steps: int,
    on_step: Callable[[int], None] | None = None,
) -> None:
    """One pipeline call with the engine's parameters, decoded like the engine does (output_type np)."""

    def step_end(_pipeline: object, step: int, _timestep: object, _tensors: dict) -> dict:
        if on_step is not None:
            on_step(step)
        return {}

    pipeline(
        image=image,
        prompt=PROMPT,
        negative_prompt=NEGATIVE_PROMPT,
        true_cfg_scale=TRUE_CFG_SCALE,
        layers=layers,
        num_inference_steps=steps,
        resolution=resolution,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
        num_images_per_prompt=1,
        callback_on_step_end=step_end,
        callback_on_step_end_tensor_inputs=[],
    )


def transformer_flops_per_step(
    pipeline: QwenImageLayeredPipeline, image: Image.Image, resolution: int, layers: int
) -> int:
    """FLOPs of the transformer in one denoising step (conditional + unconditional pass), counted by torch."""
    counts: list[int] = []
    counters: list[FlopCounterMode] = []

    def start(_module: object, _args: object) -> None:
        counters.append(FlopCounterMode(display=False))
        counters[-1].__enter__()

    def stop(_module: object, _args: object, _output: object) -> None:
        counter = counters.pop()
        counter.__exit__(None, None, None)
        counts.append(counter.get_total_flops())

    handles = [
        pipeline.transformer.register_forward_pre_hook(start),
        pipeline.transformer.register_forward_hook(stop),
    ]
    try:
        run(pipeline, image, resolution, layers, steps=1)
    finally:
        for handle in handles:
            handle.remove()
    return sum(counts)


def measure(
    pipeline: QwenImageLayeredPipeline, device: str, image: Image.Image, resolution: int, layers: int, steps: int
) -> dict:
    """Seconds of each of the last `steps` denoising steps, and (on CUDA) the call's memory figures."""
    marks: list[float] = []

    def mark(_step: int) -> None:
        synchronise(device)
        marks.append(time.perf_counter())

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        resident = torch.cuda.memory_allocated(device)
    run(pipeline, image, resolution, layers, steps + 1, on_step=mark)  # step 1's interval is not timed
    step_seconds = [later - earlier for earlier, later in itertools.pairwise(marks)]
    result: dict = {"step_seconds": step_seconds, "seconds_per_step": statistics.median(step_seconds)}
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
        result |= {
            "peak_allocated_bytes": peak,
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(device),
            "job_bytes": peak - resident,
        }
    return result


def job_bytes(pipeline: QwenImageLayeredPipeline, device: str, image: Image.Image, resolution: int, layers: int) -> int:
    """Bytes one job allocates on top of what is resident: peak during a one-step call minus before it."""
    torch.cuda.reset_peak_memory_stats(device)
    resident = torch.cuda.memory_allocated(device)
    run(pipeline, image, resolution, layers, steps=1)
    return torch.cuda.max_memory_allocated(device) - resident


def peak_flops(device: str, override_tflops: float | None) -> float | None:
    """The device's dense 16-bit peak in FLOP/s: --peak-tflops, else looked up by name, else None."""
    if override_tflops:
        return override_tflops * 1e12
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_FLOPS if key in name), None)


def write_table(path: Path, device: str, entries: list[dict]) -> None:
    """Writes the engine's memory table (services/decompose/engines/qwen/memory.py reads it)."""
    document = {"version": 1, "device": torch.cuda.get_device_name(device), "entries": entries}
    path.write_text(json.dumps(document, indent=2))


def csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="read the model's config files here (weights are not read)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--resolutions", default="640,1024")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--dtypes", default="bfloat16,float16")
    parser.add_argument("--offload", default="off,on", help="off, on or both: enable_model_cpu_offload")
    parser.add_argument("--table", type=Path, help="write the engine's memory table here")
    parser.add_argument("--table-layers", default="2,4,8", help="extra layer counts measured for --table")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense 16-bit peak, if not in the built-in list")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs every configuration and prints one JSON document; exit status 2 without CUDA."""
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "bench/qwen_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); "
            "it measures the qwen engine's GPU path and has no CPU mode",
            file=sys.stderr,
        )
        return 2
    device = args.device
    resolutions = [int(value) for value in csv(args.resolutions)]
    offloads = [value == "on" for value in csv(args.offload)]
    image = poster_image(max(resolutions))
    peak = peak_flops(device, args.peak_tflops)
    started = time.perf_counter()
    pipeline = random_pipeline(args.model_dir, device, DTYPES[csv(args.dtypes)[0]])
    build_seconds = time.perf_counter() - started
    results, table = [], []
    for offload in sorted(offloads):  # on-GPU first: enabling offload moves the models to the host for good
        if offload:
            pipeline.enable_model_cpu_offload(device=device)
        for dtype_name in csv(args.dtypes):
            for module in (pipeline.transformer, pipeline.text_encoder, pipeline.vae):
                module.to(dtype=DTYPES[dtype_name])
            torch.cuda.empty_cache()
            setting = {"dtype": dtype_name, "offload": offload, "quantization": "none"}
            for resolution in resolutions:
                configuration_started = time.perf_counter()
                flops = transformer_flops_per_step(pipeline, image, resolution, args.layers)  # also the warm-up
                figures = measure(pipeline, device, image, resolution, args.layers, args.steps)
                utilisation = flops / figures["seconds_per_step"] / peak if peak else None
                entry = {"resolution": resolution, "layers": args.layers, **setting}
                results.append({**entry, **figures, "transformer_flops_per_step": flops, "mfu": utilisation})
                table.append({**entry, "job_bytes": figures["job_bytes"]})
                if args.table:
                    for layers in (int(value) for value in csv(args.table_layers)):
                        if layers != args.layers:
                            measured = job_bytes(pipeline, device, image, resolution, layers)
                            table.append({"resolution": resolution, "layers": layers, **setting, "job_bytes": measured})
                    # Rewritten after every configuration, so a run cut short still leaves what it measured.
                    write_table(args.table, device, table)
                results[-1]["wall_seconds"] = time.perf_counter() - configuration_started
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {
        "bench": "qwen_gpu",
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": __import__("diffusers").__version__,
        "weights": "random, full size",
        "config": str(args.model_dir) if args.model_dir else "public description",
        "peak_flops": peak,
        "build_seconds": build_seconds,
        "prompt": PROMPT,
        "true_cfg_scale": TRUE_CFG_SCALE,
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
