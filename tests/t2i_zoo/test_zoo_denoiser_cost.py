"""Parameter and FLOP counting from configs, checked against real (CPU) models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import SD3Transformer2DModel, UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode

from mnc_core.t2i.zoo import ZooConfigError, load_zoo_configs
from mnc_core.t2i.zoo.denoiser_cost import (
    INPUT_BUILDERS,
    count_forward_flops,
    denoiser_cost,
    sampling_defaults,
)


def test_linear_flops_are_counted_on_meta_tensors() -> None:
    """2 * in * out FLOPs per row for a matmul: computable by hand."""
    with torch.device("meta"):
        layer = torch.nn.Linear(64, 32, bias=False)
        x = torch.empty(5, 64)
    assert count_forward_flops(layer, {"input": x}) == 2 * 5 * 64 * 32


def test_unet_params_match_a_real_instantiation(tiny_zoo: dict[str, Path]) -> None:
    config = json.loads((tiny_zoo["tiny-sd"] / "unet" / "config.json").read_text())
    real = UNet2DConditionModel.from_config(config)  # real CPU weights, tiny
    expected = sum(p.numel() for p in real.parameters())
    cost = denoiser_cost(load_zoo_configs(tiny_zoo["tiny-sd"]))
    assert cost.params == expected
    assert cost.trainable_params == expected  # a UNet has no persistent buffers


def test_sd3_params_include_the_positional_table(tiny_zoo: dict[str, Path]) -> None:
    """State-dict size = parameters + pos_embed (max_size^2 x heads*head_dim)."""
    config = json.loads((tiny_zoo["tiny-sd3"] / "transformer" / "config.json").read_text())
    real = SD3Transformer2DModel.from_config(config)
    trainable = sum(p.numel() for p in real.parameters())
    table = config["pos_embed_max_size"] ** 2 * (
        config["num_attention_heads"] * config["attention_head_dim"]
    )
    cost = denoiser_cost(load_zoo_configs(tiny_zoo["tiny-sd3"]))
    assert cost.trainable_params == trainable
    assert cost.params == trainable + table


def test_meta_flops_equal_a_real_forward(tiny_zoo: dict[str, Path]) -> None:
    """Counting on meta tensors loses no op compared with running the real model."""
    model = load_zoo_configs(tiny_zoo["tiny-xl"])
    cost = denoiser_cost(model)
    real = UNet2DConditionModel.from_config(model.denoiser.config).eval()
    inputs = INPUT_BUILDERS["UNet2DConditionModel"](dict(real.config), cost.sampling)
    inputs = {k: v for k, v in inputs.items() if k != "added_cond_kwargs"}
    added = {"text_embeds": torch.randn(1, 32), "time_ids": torch.randn(1, 6)}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        real(**{k: torch.randn(v.shape) for k, v in inputs.items()}, added_cond_kwargs=added)
    assert cost.forward_flops == counter.get_total_flops() > 0


def test_sampling_defaults_follow_the_pipeline_class(tiny_zoo: dict[str, Path]) -> None:
    sd = sampling_defaults(load_zoo_configs(tiny_zoo["tiny-sd"]))
    # StableDiffusionPipeline: 50 steps, guidance 7.5 (two passes); VAE factor 2 here
    assert (sd.steps, sd.guidance_passes) == (50, 2)
    assert (sd.height, sd.latent_size, sd.text_tokens) == (16, 8, 77)
    sd3 = sampling_defaults(load_zoo_configs(tiny_zoo["tiny-sd3"]))
    # SD3: 28 steps, 77 CLIP tokens + 256 T5 tokens
    assert (sd3.steps, sd3.guidance_passes, sd3.text_tokens) == (28, 2, 333)
    at_32 = sampling_defaults(load_zoo_configs(tiny_zoo["tiny-sd"]), resolution=32)
    assert (at_32.height, at_32.latent_size) == (32, 16)


def test_tflops_per_image_scales_forward_by_steps_and_passes(tiny_zoo: dict[str, Path]) -> None:
    cost = denoiser_cost(load_zoo_configs(tiny_zoo["tiny-sd"]))
    assert cost.tflops_per_image == pytest.approx(cost.forward_flops * 50 * 2 / 1e12)
    bigger = denoiser_cost(load_zoo_configs(tiny_zoo["tiny-sd"]), resolution=32)
    assert bigger.forward_flops > cost.forward_flops


def test_unknown_denoiser_class_is_a_clear_error(
    tiny_zoo: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = tmp_path / "odd"
    shutil.copytree(tiny_zoo["tiny-sd"], model_dir)
    config_path = model_dir / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["_class_name"] = "NoSuchModel"
    config_path.write_text(json.dumps(config))
    index = json.loads((model_dir / "model_index.json").read_text())
    index["unet"] = ["diffusers", "NoSuchModel"]
    (model_dir / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ZooConfigError, match=r"unet/config\.json: denoiser class 'NoSuchModel'"):
        denoiser_cost(load_zoo_configs(model_dir))


def test_inconsistent_config_is_a_clear_error(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    model_dir = tmp_path / "inconsistent"
    shutil.copytree(tiny_zoo["tiny-sd"], model_dir)
    config_path = model_dir / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["attention_head_dim"] = [8, 8, 8]  # three values for two blocks
    config_path.write_text(json.dumps(config))
    with pytest.raises(ZooConfigError, match=r"unet/config\.json: cannot build"):
        denoiser_cost(load_zoo_configs(model_dir))
