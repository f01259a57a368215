"""A small hand-made zoo of three tiny pipelines (configs only) for the zoo tests.

- `tiny-sd`: SD 1.5-shaped UNet, PNDM scheduler, one CLIP text encoder.
- `tiny-xl`: SDXL-shaped UNet (text_time conditioning), Euler scheduler, two CLIP encoders.
- `tiny-sd3`: SD3 transformer with a persistent positional table, flow-matching scheduler.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CLIP_TEXT = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 77,
    "projection_dim": 32,
    "transformers_version": "5.0.0",
}

TINY_VAE = {
    "_class_name": "AutoencoderKL",
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "latent_channels": 4,
    "norm_num_groups": 8,
    "layers_per_block": 1,
    "sample_size": 16,
}

TINY_SD_UNET = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.42.0",
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
}

TINY_XL_UNET = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.42.0",
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2],
    "cross_attention_dim": 64,
    "attention_head_dim": [4, 8],
    "norm_num_groups": 8,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 32 + 6 * 8,
    "use_linear_projection": True,
}

TINY_SD3 = {
    "_class_name": "SD3Transformer2DModel",
    "sample_size": 8,
    "patch_size": 2,
    "in_channels": 4,
    "out_channels": 4,
    "num_layers": 1,
    "attention_head_dim": 8,
    "num_attention_heads": 2,
    "joint_attention_dim": 16,
    "caption_projection_dim": 16,
    "pooled_projection_dim": 16,
    "pos_embed_max_size": 12,
}


def _index(pipeline: str, components: dict[str, list]) -> dict:
    return {"_class_name": pipeline, "_diffusers_version": "0.42.0", **components}


def write_pipeline(root: Path, name: str, index: dict, configs: dict[str, dict]) -> Path:
    """Write a configs-only diffusers pipeline directory."""
    model_dir = root / name
    model_dir.mkdir(parents=True)
    (model_dir / "model_index.json").write_text(json.dumps(index, indent=2))
    for component, config in configs.items():
        file_name = "scheduler_config.json" if component == "scheduler" else "config.json"
        (model_dir / component).mkdir()
        (model_dir / component / file_name).write_text(json.dumps(config, indent=2))
    return model_dir


def write_tiny_zoo(root: Path) -> dict[str, Path]:
    """The three tiny pipelines under `root`, by model id."""
    sd = write_pipeline(
        root,
        "tiny-sd",
        _index(
            "StableDiffusionPipeline",
            {
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "scheduler": ["diffusers", "PNDMScheduler"],
                "safety_checker": [None, None],
            },
        ),
        {
            "unet": TINY_SD_UNET,
            "vae": TINY_VAE,
            "text_encoder": CLIP_TEXT,
            "scheduler": {"_class_name": "PNDMScheduler", "num_train_timesteps": 1000},
        },
    )
    xl = write_pipeline(
        root,
        "tiny-xl",
        _index(
            "StableDiffusionXLPipeline",
            {
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
                "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            },
        ),
        {
            "unet": TINY_XL_UNET,
            "vae": TINY_VAE,
            "text_encoder": CLIP_TEXT,
            "text_encoder_2": {**CLIP_TEXT, "hidden_size": 64},
            "scheduler": {"_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000},
        },
    )
    sd3 = write_pipeline(
        root,
        "tiny-sd3",
        _index(
            "StableDiffusion3Pipeline",
            {
                "transformer": ["diffusers", "SD3Transformer2DModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
                "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            },
        ),
        {
            "transformer": TINY_SD3,
            "vae": TINY_VAE,
            "text_encoder": CLIP_TEXT,
            "scheduler": {
                "_class_name": "FlowMatchEulerDiscreteScheduler",
                "num_train_timesteps": 1000,
                "shift": 3.0,
            },
        },
    )
    return {"tiny-sd": sd, "tiny-xl": xl, "tiny-sd3": sd3}


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_zoo(tmp_path_factory.mktemp("tiny-zoo"))
