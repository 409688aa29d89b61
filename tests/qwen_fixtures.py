"""A tiny random-weight Qwen-Image-Layered pipeline, built offline (no hub download), saved to a directory.

Same classes and structure as the released model (4-channel RGBA VAE, layer-3D RoPE, the additional
timestep condition, a Qwen2.5-VL text encoder with a vision tower, a byte-level Qwen2 tokenizer with
Qwen's special tokens), scaled down so a 2-step run fits in seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageLayeredPipeline,
    QwenImageTransformer2DModel,
)
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLImageProcessorPil,
)

from bench.qwen_gpu import QWEN_SPECIAL_TOKENS, byte_level_tokenizer

Z_DIM = 8
TEXT_HIDDEN = 16


def tiny_text_encoder(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    """A 2-layer Qwen2.5-VL (hidden 16) with a 2-block vision tower, token ids from `tokenizer`."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1_000_000.0},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": TEXT_HIDDEN,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def build_tiny_pipeline(directory: Path, seed: int = 0) -> Path:
    """Builds the tiny pipeline with random weights (seeded) and saves it to `directory`; returns it."""
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=Z_DIM * 4,
        out_channels=Z_DIM,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=TEXT_HIDDEN,
        axes_dims_rope=(8, 4, 4),
        use_layer3d_rope=True,
        use_additional_t_cond=True,
    )
    vae = AutoencoderKLQwenImage(
        base_dim=24,
        z_dim=Z_DIM,
        num_res_blocks=1,
        input_channels=4,
        latents_mean=[0.0] * Z_DIM,
        latents_std=[1.0] * Z_DIM,
    )
    tokenizer = byte_level_tokenizer()
    pipeline = QwenImageLayeredPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        processor=None,
        transformer=transformer,
    )
    pipeline.save_pretrained(directory)
    # transformers 5 cannot build a Qwen2VLProcessor without torchvision (its video half needs it), so the
    # processor folder is written from its parts, in the released layout: image processor and tokenizer files.
    processor_dir = directory / "processor"
    # Small pixel bounds keep the vision tower's input a few patches when the pipeline captions.
    Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56).save_pretrained(processor_dir)
    tokenizer.save_pretrained(processor_dir)
    index_path = directory / "model_index.json"
    index = json.loads(index_path.read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2))
    return directory
