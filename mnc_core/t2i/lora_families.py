"""Per-family pieces of LoRA fine-tuning: text encoding, latents, prediction/target, LoRA I/O.

The training loop (`lora_training.py`) is the same for every family; what
differs, and lives here, follows the diffusers reference scripts
(train_text_to_image_lora[_sdxl].py, train_dreambooth_lora_{sd3,flux,sana}.py):

- how captions become conditioning tensors (the pipeline's own `encode_prompt`),
- how images become latents (KL VAE: distribution mean/std, shift and scale;
  DC-AE for Sana: a deterministic latent),
- the noise/target rule: epsilon or v-prediction on the DDPM schedule (UNet
  families, PixArt), or rectified flow on flow-matching sigmas (SD3, Flux, Sana),
- the denoiser call (SDXL and Kolors add_time_ids + pooled embeds, Flux latent
  packing, PixArt learned sigma: only the first half of the output channels is
  the noise),
- which modules get LoRA and how the LoRA is saved in the diffusers format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    DDPMScheduler,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    KolorsPipeline,
    PixArtSigmaPipeline,
    SanaPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.training_utils import (
    compute_density_for_timestep_sampling,
    compute_loss_weighting_for_sd3,
)
from diffusers.utils import convert_state_dict_to_diffusers, convert_unet_state_dict_to_peft
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
from peft import set_peft_model_state_dict as _set_peft_state
from safetensors.torch import load_file, save_file

#: File name diffusers' `save_lora_weights` writes and `load_lora_weights` reads.
LORA_WEIGHTS_FILE = "pytorch_lora_weights.safetensors"

_UNET_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
_SD3_TARGETS = (
    "attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0",
    "attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
)  # fmt: skip
_FLUX_TARGETS = (
    "attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0",
    "attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
    "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
)  # fmt: skip
_SANA_TARGETS = ("to_k", "to_q", "to_v")


@dataclass(frozen=True)
class FamilySpec:
    """What differs between model families during LoRA fine-tuning."""

    name: str
    pipeline_class: type[DiffusionPipeline]
    denoiser_attr: str  # "unet" or "transformer"
    target_modules: tuple[str, ...]
    flow_matching: bool
    #: keyword of `save_lora_weights`; None where the pipeline has no LoRA loader (PixArt)
    lora_save_kwarg: str | None
    default_max_sequence_length: int | None = None
    #: SDXL micro-conditioning: the UNet takes add_time_ids and a pooled text embedding
    time_ids: bool = False


FAMILY_SPECS: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec("sd", StableDiffusionPipeline, "unet", _UNET_TARGETS, False, "unet_lora_layers"),
        FamilySpec(
            "sdxl", StableDiffusionXLPipeline, "unet", _UNET_TARGETS, False, "unet_lora_layers",
            time_ids=True,
        ),
        # Kolors: SDXL-type UNet on ChatGLM states; its LoRA loader is SD's (unet_lora_layers)
        FamilySpec(
            "kolors", KolorsPipeline, "unet", _UNET_TARGETS, False, "unet_lora_layers", 256,
            time_ids=True,
        ),
        FamilySpec(
            "sd3", StableDiffusion3Pipeline, "transformer", _SD3_TARGETS, True,
            "transformer_lora_layers", 77,
        ),
        FamilySpec(
            "flux", FluxPipeline, "transformer", _FLUX_TARGETS, True,
            "transformer_lora_layers", 512,
        ),
        FamilySpec(
            "sana", SanaPipeline, "transformer", _SANA_TARGETS, True,
            "transformer_lora_layers", 300,
        ),
        FamilySpec("pixart", PixArtSigmaPipeline, "transformer", _UNET_TARGETS, False, None, 300),
    )
}  # fmt: skip


def family_of(pipe: DiffusionPipeline) -> FamilySpec:
    """The training family of a loaded pipeline, from its class (subclasses included)."""
    for spec in FAMILY_SPECS.values():
        if type(pipe) is spec.pipeline_class:
            return spec
    for spec in FAMILY_SPECS.values():
        if isinstance(pipe, spec.pipeline_class):
            return spec
    raise ValueError(
        f"no LoRA training support for pipeline class {type(pipe).__name__}; supported: "
        f"{[s.pipeline_class.__name__ for s in FAMILY_SPECS.values()]}"
    )


# ---------------------------------------------------------------- text and latents


@torch.no_grad()
def encode_captions(
    spec: FamilySpec, pipe: DiffusionPipeline, captions: list[str], max_len: int | None
) -> dict[str, torch.Tensor]:
    """Conditioning tensors for `captions` (first dim = caption), via `encode_prompt`."""
    device = pipe.device
    if spec.name == "sd":
        embeds, _ = pipe.encode_prompt(captions, device, 1, do_classifier_free_guidance=False)
        return {"prompt_embeds": embeds}
    if spec.name == "sdxl":
        embeds, _, pooled, _ = pipe.encode_prompt(
            captions, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    seq = max_len or spec.default_max_sequence_length
    if spec.name == "kolors":
        # ChatGLM's penultimate hidden states and the last token's final state (pooled)
        embeds, _, pooled, _ = pipe.encode_prompt(
            captions, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False,
            max_sequence_length=seq,
        )  # fmt: skip
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    if spec.name == "sd3":
        embeds, _, pooled, _ = pipe.encode_prompt(
            captions, None, None, device=device, do_classifier_free_guidance=False,
            max_sequence_length=seq,
        )  # fmt: skip
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    if spec.name == "flux":
        embeds, pooled, _ = pipe.encode_prompt(
            captions, None, device=device, max_sequence_length=seq
        )
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    extra = {"complex_human_instruction": None} if spec.name == "sana" else {}
    embeds, mask, _, _ = pipe.encode_prompt(
        captions, do_classifier_free_guidance=False, device=device, clean_caption=False,
        max_sequence_length=seq, **extra,
    )  # fmt: skip
    return {"prompt_embeds": embeds, "prompt_attention_mask": mask}


@torch.no_grad()
def encode_pixels(pipe: DiffusionPipeline, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """VAE latent distribution (mean, std) of images in [-1, 1], before shift/scale.

    Keeping the distribution (not one sample) lets each training step draw a
    fresh latent sample, as the reference scripts do, from the cached values.
    """
    vae = pipe.vae
    pixels = pixels.to(device=vae.device, dtype=vae.dtype)
    out = vae.encode(pixels)
    if hasattr(out, "latent_dist"):
        dist = out.latent_dist
        return {"latent_mean": dist.mean.float(), "latent_std": dist.std.float()}
    latent = out.latent.float()  # AutoencoderDC: deterministic
    return {"latent_mean": latent, "latent_std": torch.zeros_like(latent)}


def latent_transform(pipe: DiffusionPipeline) -> tuple[float, float]:
    """(shift, scale) so that the denoiser's latents are (sample - shift) * scale."""
    config = pipe.vae.config
    shift = getattr(config, "shift_factor", None) or 0.0
    return float(shift), float(config.scaling_factor)


# ---------------------------------------------------------------- noise and target


def training_scheduler(spec: FamilySpec, pipe: DiffusionPipeline):
    """The noise scheduler the reference scripts train with, from the pipeline's config."""
    if spec.flow_matching:
        return FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return DDPMScheduler.from_config(pipe.scheduler.config)


@dataclass
class NoisedBatch:
    """Noisy latents, the timesteps to condition on, the target and per-sample loss weight."""

    noisy: torch.Tensor
    timesteps: torch.Tensor
    target: torch.Tensor
    weighting: torch.Tensor


def add_noise(
    spec: FamilySpec,
    scheduler,
    latents: torch.Tensor,
    noise: torch.Tensor,
    generator: torch.Generator,
    weighting_scheme: str = "none",
) -> NoisedBatch:
    """Draw timesteps with `generator` and build the noisy input and the target."""
    bsz = latents.shape[0]
    n_train = scheduler.config.num_train_timesteps
    if spec.flow_matching:
        u = compute_density_for_timestep_sampling(
            weighting_scheme, bsz, logit_mean=0.0, logit_std=1.0, mode_scale=1.29,
            generator=generator,
        )  # fmt: skip
        indices = (u * n_train).long().clamp(max=n_train - 1)
        timesteps = scheduler.timesteps[indices]
        sigmas = scheduler.sigmas[indices].view(bsz, 1, 1, 1)
        noisy = (1.0 - sigmas) * latents + sigmas * noise
        weighting = compute_loss_weighting_for_sd3(weighting_scheme, sigmas)
        return NoisedBatch(noisy, timesteps, noise - latents, weighting)
    timesteps = torch.randint(0, n_train, (bsz,), generator=generator).long()
    noisy = scheduler.add_noise(latents, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    return NoisedBatch(noisy, timesteps, target, torch.ones(bsz, 1, 1, 1))


def predict(
    spec: FamilySpec,
    denoiser: torch.nn.Module,
    batch: NoisedBatch,
    text: dict[str, torch.Tensor],
    time_ids: torch.Tensor | None = None,
    guidance: float = 1.0,
) -> torch.Tensor:
    """The denoiser's prediction for `batch` (same layout as `batch.target`)."""
    noisy, t = batch.noisy, batch.timesteps.to(batch.noisy.device)
    if spec.name == "sd":
        return denoiser(noisy, t, encoder_hidden_states=text["prompt_embeds"]).sample
    if spec.time_ids:  # SDXL, Kolors (its UNet projects ChatGLM states itself)
        cond = {"text_embeds": text["pooled_prompt_embeds"], "time_ids": time_ids}
        return denoiser(
            noisy, t, encoder_hidden_states=text["prompt_embeds"], added_cond_kwargs=cond
        ).sample
    if spec.name == "sd3":
        return denoiser(
            hidden_states=noisy, timestep=t, encoder_hidden_states=text["prompt_embeds"],
            pooled_projections=text["pooled_prompt_embeds"],
        ).sample  # fmt: skip
    if spec.name == "flux":
        return _predict_flux(denoiser, noisy, t, text, guidance)
    if spec.name == "sana":
        return denoiser(
            noisy, encoder_hidden_states=text["prompt_embeds"],
            encoder_attention_mask=text["prompt_attention_mask"], timestep=t,
        ).sample  # fmt: skip
    out = denoiser(
        noisy, encoder_hidden_states=text["prompt_embeds"],
        encoder_attention_mask=text["prompt_attention_mask"], timestep=t,
        added_cond_kwargs={"resolution": None, "aspect_ratio": None},
    ).sample  # fmt: skip
    if out.shape[1] == 2 * noisy.shape[1]:  # learned sigma: first half is the noise
        out = out.chunk(2, dim=1)[0]
    return out


def _predict_flux(denoiser, noisy, t, text, guidance: float) -> torch.Tensor:
    """Flux works on 2x2-packed latent tokens with positional ids."""
    b, c, h, w = noisy.shape
    packed = FluxPipeline._pack_latents(noisy, b, c, h, w)
    img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, noisy.device, noisy.dtype)
    embeds = text["prompt_embeds"]
    txt_ids = torch.zeros(embeds.shape[1], 3, device=noisy.device, dtype=noisy.dtype)
    guidance_vec = None
    if denoiser.config.guidance_embeds:
        guidance_vec = torch.full((b,), guidance, device=noisy.device, dtype=torch.float32)
    out = denoiser(
        hidden_states=packed, timestep=t / 1000, guidance=guidance_vec,
        pooled_projections=text["pooled_prompt_embeds"], encoder_hidden_states=embeds,
        txt_ids=txt_ids, img_ids=img_ids,
    ).sample  # fmt: skip
    return FluxPipeline._unpack_latents(out, height=h, width=w, vae_scale_factor=1)


def sdxl_time_ids(
    original_hw: torch.Tensor, crop_top_left: torch.Tensor, resolution: int
) -> torch.Tensor:
    """SDXL micro-conditioning: (orig h, orig w, crop top, crop left, target h, target w)."""
    target = torch.tensor([resolution, resolution], dtype=torch.float32)
    target = target.expand(original_hw.shape[0], 2)
    return torch.cat([original_hw.float(), crop_top_left.float(), target], dim=1)


# ---------------------------------------------------------------- LoRA injection and I/O


def lora_config(spec: FamilySpec, rank: int, alpha: float | None) -> LoraConfig:
    return LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else rank,
        init_lora_weights="gaussian",
        target_modules=list(spec.target_modules),
    )


def add_lora(spec: FamilySpec, denoiser: torch.nn.Module, config: LoraConfig) -> None:
    """Inject the LoRA adapter (peft directly where diffusers has no adapter mixin)."""
    if hasattr(denoiser, "add_adapter"):
        denoiser.add_adapter(config)
    else:
        inject_adapter_in_model(config, denoiser, adapter_name="default")


def lora_state_dict(spec: FamilySpec, denoiser: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's weights, keyed as the family's `save_lora_weights` expects."""
    state = get_peft_model_state_dict(denoiser, adapter_name="default")
    if spec.denoiser_attr == "unet":
        state = convert_state_dict_to_diffusers(state)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_lora(spec: FamilySpec, denoiser: torch.nn.Module, out_dir: Path) -> Path:
    """Write `pytorch_lora_weights.safetensors` loadable by the pipeline's loader."""
    state = lora_state_dict(spec, denoiser)
    out_dir.mkdir(parents=True, exist_ok=True)
    if spec.lora_save_kwarg is None:
        prefixed = {f"{spec.denoiser_attr}.{k}": v for k, v in state.items()}
        save_file(prefixed, str(out_dir / LORA_WEIGHTS_FILE))
    else:
        spec.pipeline_class.save_lora_weights(
            str(out_dir), safe_serialization=True, **{spec.lora_save_kwarg: state}
        )
    return out_dir / LORA_WEIGHTS_FILE


def load_lora_into(spec: FamilySpec, denoiser: torch.nn.Module, weights: Path) -> None:
    """Set an already-injected adapter's weights from a saved LoRA file (resume, PixArt)."""
    prefix = spec.denoiser_attr + "."
    state = {
        k[len(prefix) :]: v for k, v in load_file(str(weights)).items() if k.startswith(prefix)
    }
    if not state:
        raise ValueError(f"{weights} holds no {spec.denoiser_attr} LoRA weights")
    if spec.denoiser_attr == "unet":
        state = convert_unet_state_dict_to_peft(state)
    result = _set_peft_state(denoiser, state, adapter_name="default")
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"{weights}: LoRA keys do not match the model: {unexpected[:3]}")
