"""Size and compute of a pipeline's denoiser, counted from its config alone.

Why: the paper's model features include the number of parameters and the
throughput (FLOPs per image). Both are counted here without any weights: the
diffusers class is built on the `meta` device (no memory is allocated, even for
a 12 B-parameter transformer) and one forward pass on meta tensors runs under
`torch.utils.flop_counter.FlopCounterMode`, which counts matmuls, convolutions
and attention from shapes only.

What is counted (documented in CATALOG.md too):
- `params`: every tensor of the denoiser's state dict (parameters plus
  persistent buffers such as SD3's 384x384 positional table): what a
  checkpoint stores; `trainable_params`: `nn.Parameter`s only.
- `tflops_per_image`: denoiser forward FLOPs (batch 1) at the pipeline's
  default resolution and text length, times the default number of sampling
  steps, times the guidance passes (2 with classifier-free guidance, 1 for
  guidance-distilled pipelines such as FLUX.1-dev). Text encoders and the VAE
  decoder are not counted.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mnc_core.t2i.zoo.configs import ComponentConfig, ZooConfigError, ZooModel

logger = logging.getLogger(__name__)

# SDXL-style micro-conditioning: original size (2) + crop (2) + target size (2).
SDXL_TIME_IDS = 6
# CLIP tokenizers pad to this length; used when a pipeline has no max_sequence_length.
CLIP_TOKENS = 77
# FluxPipeline sets `default_sample_size = 128` in __init__ (not in any config).
FLUX_DEFAULT_SAMPLE_SIZE = 128


@dataclass(frozen=True)
class SamplingDefaults:
    """The pipeline call's defaults that set the compute of one image."""

    steps: int
    guidance_passes: int
    height: int
    width: int
    latent_size: int
    text_tokens: int


@dataclass(frozen=True)
class DenoiserCost:
    """Parameter counts and FLOPs of one denoiser."""

    params: int
    trainable_params: int
    forward_flops: int
    sampling: SamplingDefaults

    @property
    def tflops_per_image(self) -> float:
        steps = self.sampling.steps * self.sampling.guidance_passes
        return self.forward_flops * steps / 1e12


def denoiser_class(component: ComponentConfig) -> type:
    """The diffusers class of a denoiser config, with diffusers' own legacy remapping.

    PixArt checkpoints name `Transformer2DModel`; diffusers loads them as
    `PixArtTransformer2DModel` (chosen from `norm_type`), and so do we.
    """
    import diffusers
    from diffusers.models.model_loading_utils import (
        _CLASS_REMAPPING_DICT,
        _fetch_remapped_cls_from_config,
    )

    cls = getattr(diffusers, component.class_name, None)
    if cls is None:
        raise ZooConfigError(
            f"{component.path}: denoiser class {component.class_name!r} is not in diffusers"
        )
    if cls.__name__ in _CLASS_REMAPPING_DICT and "norm_type" in component.config:
        cls = _fetch_remapped_cls_from_config(component.config, cls)
    return cls


def build_meta_denoiser(component: ComponentConfig) -> Any:
    """Instantiate the denoiser on the meta device (shapes only, no memory)."""
    import torch

    cls = denoiser_class(component)
    try:
        with torch.device("meta"):
            return cls.from_config(component.config)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as err:
        raise ZooConfigError(f"{component.path}: cannot build {cls.__name__}: {err}") from err


def vae_scale_factor(model: ZooModel) -> int:
    """Pixel-to-latent downsampling of the VAE, as the diffusers pipelines compute it."""
    config = model.vae.config
    channels = config.get("block_out_channels") or config.get("encoder_block_out_channels")
    if not channels:
        raise ZooConfigError(f"{model.vae.path}: no block_out_channels to derive the scale factor")
    return 2 ** (len(channels) - 1)


def _call_default(pipeline_cls: type, method: str, name: str) -> Any:
    """Default of argument `name` of `pipeline_cls.<method>`, or None."""
    func = getattr(pipeline_cls, method, None)
    if func is None:
        return None
    param = inspect.signature(func).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def pipeline_class(model: ZooModel) -> type:
    """The diffusers pipeline class named in model_index.json (the real one, not a dummy).

    diffusers exposes a placeholder class when an optional dependency of a
    pipeline is missing; its call signature has no defaults, so it is refused
    instead of silently giving empty sampling defaults.
    """
    import diffusers
    from diffusers.utils import DummyObject

    name = model.pipeline_class
    cls = getattr(diffusers, name, None)
    if cls is None:
        raise ZooConfigError(
            f"{model.path / 'model_index.json'}: pipeline {name!r} is not in diffusers"
        )
    if isinstance(cls, DummyObject):
        raise ZooConfigError(
            f"{model.path / 'model_index.json'}: pipeline {name!r} needs {cls._backends} installed"
        )
    return cls


def sampling_defaults(model: ZooModel, resolution: int | None = None) -> SamplingDefaults:
    """Steps, guidance passes, resolution and text length of the pipeline's default call.

    `resolution` (pixels, square) replaces the default resolution, e.g. to compare
    every model at the 512 px the paper's datasets are cropped to.

    Read from the diffusers pipeline class's `__call__` signature, so they follow
    the installed diffusers. Guidance passes: with a `true_cfg_scale` argument
    (guidance-distilled pipelines) classifier-free guidance only runs when it
    exceeds 1; otherwise it runs when `guidance_scale` exceeds 1.
    """
    pipeline_cls = pipeline_class(model)
    steps = _call_default(pipeline_cls, "__call__", "num_inference_steps")
    guidance = _call_default(pipeline_cls, "__call__", "guidance_scale") or 1.0
    true_cfg = _call_default(pipeline_cls, "__call__", "true_cfg_scale")
    cfg_scale = true_cfg if true_cfg is not None else guidance
    passes = 2 if cfg_scale > 1 else 1

    sample_size = model.denoiser.config.get("sample_size")
    if sample_size is None and model.denoiser.class_name == "FluxTransformer2DModel":
        sample_size = FLUX_DEFAULT_SAMPLE_SIZE
    if isinstance(sample_size, list):
        sample_size = sample_size[0]
    if not isinstance(sample_size, int) or not isinstance(steps, int):
        raise ZooConfigError(
            f"{model.denoiser.path}: cannot tell the default resolution "
            f"(sample_size={sample_size!r}) or steps ({steps!r})"
        )
    scale = vae_scale_factor(model)
    if resolution is not None:
        if resolution % scale:
            raise ValueError(f"resolution {resolution} is not a multiple of the VAE factor {scale}")
        sample_size = resolution // scale
    return SamplingDefaults(
        steps=steps,
        guidance_passes=passes,
        height=sample_size * scale,
        width=sample_size * scale,
        latent_size=sample_size,
        text_tokens=_text_tokens(model, pipeline_cls),
    )


def _text_tokens(model: ZooModel, pipeline_cls: type) -> int:
    """Length of the text sequence the denoiser attends to by default."""
    length = _call_default(pipeline_cls, "__call__", "max_sequence_length")
    if length is None:
        length = _call_default(pipeline_cls, "encode_prompt", "max_sequence_length")
    if length is None:
        first = model.text_encoders[0].config if model.text_encoders else {}
        return int(first.get("max_position_embeddings", CLIP_TOKENS))
    if model.denoiser.class_name == "SD3Transformer2DModel":
        return CLIP_TOKENS + int(length)  # CLIP tokens concatenated with the T5 tokens
    return int(length)


InputBuilder = Callable[[dict[str, Any], SamplingDefaults], dict[str, Any]]


def _unet_inputs(config: dict[str, Any], s: SamplingDefaults) -> dict[str, Any]:
    import torch

    text_dim = config.get("encoder_hid_dim") or config["cross_attention_dim"]
    inputs: dict[str, Any] = {
        "sample": torch.empty(1, config["in_channels"], s.latent_size, s.latent_size),
        "timestep": torch.ones(1),
        "encoder_hidden_states": torch.empty(1, s.text_tokens, text_dim),
    }
    if config.get("addition_embed_type") == "text_time":
        time_dim = config["addition_time_embed_dim"]
        pooled = config["projection_class_embeddings_input_dim"] - SDXL_TIME_IDS * time_dim
        inputs["added_cond_kwargs"] = {
            "text_embeds": torch.empty(1, pooled),
            "time_ids": torch.empty(1, SDXL_TIME_IDS),
        }
    return inputs


def _pixart_inputs(config: dict[str, Any], s: SamplingDefaults) -> dict[str, Any]:
    import torch

    return {
        "hidden_states": torch.empty(1, config["in_channels"], s.latent_size, s.latent_size),
        "encoder_hidden_states": torch.empty(1, s.text_tokens, config["caption_channels"]),
        "timestep": torch.ones(1),
        "added_cond_kwargs": {"resolution": torch.empty(1, 2), "aspect_ratio": torch.empty(1, 1)},
    }


def _sana_inputs(config: dict[str, Any], s: SamplingDefaults) -> dict[str, Any]:
    import torch

    return {
        "hidden_states": torch.empty(1, config["in_channels"], s.latent_size, s.latent_size),
        "encoder_hidden_states": torch.empty(1, s.text_tokens, config["caption_channels"]),
        "timestep": torch.ones(1),
    }


def _sd3_inputs(config: dict[str, Any], s: SamplingDefaults) -> dict[str, Any]:
    import torch

    return {
        "hidden_states": torch.empty(1, config["in_channels"], s.latent_size, s.latent_size),
        "encoder_hidden_states": torch.empty(1, s.text_tokens, config["joint_attention_dim"]),
        "pooled_projections": torch.empty(1, config["pooled_projection_dim"]),
        "timestep": torch.ones(1),
    }


def _flux_inputs(config: dict[str, Any], s: SamplingDefaults) -> dict[str, Any]:
    import torch

    # FluxPipeline packs 2x2 latent patches into tokens of in_channels (= 4 x latent channels).
    image_tokens = (s.latent_size // 2) ** 2
    inputs = {
        "hidden_states": torch.empty(1, image_tokens, config["in_channels"]),
        "encoder_hidden_states": torch.empty(1, s.text_tokens, config["joint_attention_dim"]),
        "pooled_projections": torch.empty(1, config["pooled_projection_dim"]),
        "timestep": torch.ones(1),
        "img_ids": torch.zeros(image_tokens, 3),
        "txt_ids": torch.zeros(s.text_tokens, 3),
    }
    if config.get("guidance_embeds"):
        inputs["guidance"] = torch.ones(1)
    return inputs


INPUT_BUILDERS: dict[str, InputBuilder] = {
    "UNet2DConditionModel": _unet_inputs,
    "PixArtTransformer2DModel": _pixart_inputs,
    "SanaTransformer2DModel": _sana_inputs,
    "SD3Transformer2DModel": _sd3_inputs,
    "FluxTransformer2DModel": _flux_inputs,
}


def count_params(denoiser: Any) -> tuple[int, int]:
    """(state-dict size, nn.Parameter size) of a module, in elements.

    The state dict adds persistent buffers, e.g. SD3's positional table
    (pos_embed_max_size^2 x hidden size), which checkpoints store and the
    paper's Table 2 counts.
    """
    state = sum(t.numel() for t in denoiser.state_dict().values())
    trainable = sum(p.numel() for p in denoiser.parameters())
    return state, trainable


def count_forward_flops(denoiser: Any, inputs: dict[str, Any]) -> int:
    """FLOPs of one forward pass on meta tensors (nothing is computed or allocated)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        denoiser(**inputs)
    return int(counter.get_total_flops())


def denoiser_cost(model: ZooModel, resolution: int | None = None) -> DenoiserCost:
    """Count the denoiser's parameters and per-image FLOPs from its config.

    FLOPs are at the pipeline's default resolution unless `resolution` is given.
    """
    import torch

    denoiser = build_meta_denoiser(model.denoiser)
    params, trainable = count_params(denoiser)
    sampling = sampling_defaults(model, resolution)
    builder = INPUT_BUILDERS.get(type(denoiser).__name__)
    if builder is None:
        raise ZooConfigError(
            f"{model.denoiser.path}: no FLOP-count recipe for {type(denoiser).__name__} "
            f"(supported: {', '.join(sorted(INPUT_BUILDERS))})"
        )
    try:
        with torch.device("meta"):
            inputs = builder(dict(denoiser.config), sampling)
        flops = count_forward_flops(denoiser, inputs)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as err:
        raise ZooConfigError(
            f"{model.denoiser.path}: forward pass for FLOP counting failed "
            f"(inconsistent config?): {err}"
        ) from err
    logger.info("%s: %.3f G params, %.2f TFLOP per forward", model.model_id, params / 1e9,
                flops / 1e12)
    return DenoiserCost(params, trainable, flops, sampling)
