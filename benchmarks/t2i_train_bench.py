"""LoRA training and CLIP scoring throughput: our trainer against a reference-style loop.

What is measured (all weights random: no download is possible or needed for speed):

- LoRA training it/s of `mnc_core.t2i.lora_training.train_lora` (cached latents
  and text embeddings, bf16 frozen weights, fp32 LoRA parameters) against a
  plain loop written the way diffusers' `train_text_to_image_lora[_sdxl].py`
  trains: VAE encode and text encode on every step, frozen weights in bf16
  (the SDXL script keeps the VAE in fp32), fp32 LoRA parameters, bf16 autocast.
  The reference loop gets its images already preprocessed in memory (a favour:
  the script decodes and transforms them in a DataLoader). Full mode: the SD 1.5
  and SDXL UNet/VAE/text-encoder configs of the zoo catalog at 512 px / 1024 px,
  batch 8, LoRA rank 16. Target: ours >= 1.5x the reference it/s.
- CLIP ViT-B/32 image embedding throughput (images/s, through the project's
  `ClipEmbedder.embed_images`, preprocessing included) and the time to score
  10 000 images (embedding at that rate + a measured CLIP-FID on 10 000 x D features).

`--quick` swaps in the tiny pipelines (32 px, batch 2) and the tiny shipped CLIP
so the script runs on a CPU in about a minute; those figures only show it works.

    python benchmarks/t2i_train_bench.py --quick            # CPU smoke run
    python benchmarks/t2i_train_bench.py --device cuda      # the real measurement
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import diffusers
import numpy as np
import open_clip
import torch
import transformers
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.training_utils import cast_training_params
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from mnc_core.t2i import clip_embed
from mnc_core.t2i.datasets import load_imagefolder, preprocess_image
from mnc_core.t2i.lora_families import add_lora, family_of, lora_config
from mnc_core.t2i.lora_training import LoraTrainConfig, train_lora
from mnc_core.t2i.pipelines import load_pipeline
from mnc_core.t2i.quality import clip_fid
from mnc_core.t2i.synthetic_data import draw_synthetic_image, make_synthetic_dataset
from mnc_core.t2i.tiny_pipelines import build_tiny_pipeline, char_clip_tokenizer
from mnc_core.t2i.zoo import CATALOG_DIR

log = logging.getLogger("t2i_train_bench")
SCORE_IMAGES = 10_000


@dataclass(frozen=True)
class TrainCase:
    """One model to benchmark: where its configs are and at what size it trains."""

    name: str
    catalog: str  # catalog folder (full mode) / tiny family (quick mode)
    resolution: int
    batch_size: int


FULL_CASES = (TrainCase("sd15", "sd15", 512, 8), TrainCase("sdxl", "sdxl", 1024, 8))
QUICK_CASES = (TrainCase("sd15", "sd15", 32, 2), TrainCase("sdxl", "sdxl", 32, 2))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- building models


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def build_full_pipeline(case: TrainCase, out_dir: Path, device: torch.device) -> Path:
    """Random-weight full-size pipeline from the catalog configs, saved as safetensors (bf16)."""
    pipe = full_pipeline(case, device)
    pipe.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    del pipe
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out_dir


def full_pipeline(case: TrainCase, device: torch.device):
    """The catalog's full-size components with random weights, created on `device`.

    Tokenizers are the tiny character tokenizers (token ids stay far below the
    real vocabulary size), which changes nothing in the cost of a training step.
    """
    src = CATALOG_DIR / case.catalog
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(_config(src / "unet"))
        vae = AutoencoderKL.from_config(_config(src / "vae"))
        te_config = CLIPTextConfig.from_dict(_config(src / "text_encoder"))
        text_encoder = CLIPTextModel(te_config)
        te2 = None
        if (src / "text_encoder_2").is_dir():
            te2 = CLIPTextModelWithProjection(
                CLIPTextConfig.from_dict(_config(src / "text_encoder_2"))
            )
    scheduler_config = json.loads((src / "scheduler" / "scheduler_config.json").read_text())
    scheduler = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    tokenizer = char_clip_tokenizer(te_config.max_position_embeddings)
    if te2 is None:
        return StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            scheduler=scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False,
        )  # fmt: skip
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=te2, tokenizer=tokenizer,
        tokenizer_2=char_clip_tokenizer(te_config.max_position_embeddings), unet=unet,
        scheduler=scheduler,
    )  # fmt: skip


# ---------------------------------------------------------------- our trainer


def time_our_trainer(
    pipeline_dir: Path, dataset, case: TrainCase, steps: int, warmup: int, work: Path,
    device: torch.device, dtype: torch.dtype, gradient_checkpointing: bool = False,
) -> dict:  # fmt: skip
    """it/s of train_lora's loop after `warmup` steps, plus the one-off cache build time."""
    stamps: dict[int, float] = {}

    def tick(step: int, loss: float) -> None:
        _sync(device)
        stamps[step] = time.perf_counter()

    config = LoraTrainConfig(
        max_steps=warmup + steps, batch_size=case.batch_size, resolution=case.resolution,
        rank=16, learning_rate=1e-5, checkpoint_every=10**9,
        gradient_checkpointing=gradient_checkpointing,
    )  # fmt: skip
    t0 = time.perf_counter()
    train_lora(pipeline_dir, dataset, work / "ours", config, device=device, dtype=dtype,
               progress=tick, cache_dir=work / "cache")  # fmt: skip
    total = time.perf_counter() - t0
    loop = stamps[warmup + steps] - stamps[warmup]
    return {"it_per_s": steps / loop, "total_s": total}


# ---------------------------------------------------------------- reference loop


def time_reference_loop(
    pipeline_dir: Path, dataset, case: TrainCase, steps: int, warmup: int,
    device: torch.device, dtype: torch.dtype, gradient_checkpointing: bool = False,
) -> dict:  # fmt: skip
    """it/s of a diffusers-script-style loop: VAE + text encoders run on every step."""
    pipe = load_pipeline(pipeline_dir, device=device, dtype=torch.float32)
    spec = family_of(pipe)
    is_xl = spec.name == "sdxl"
    pipe.unet.to(dtype)
    pipe.text_encoder.to(dtype)
    if is_xl:
        pipe.text_encoder_2.to(dtype)  # the SDXL script keeps the VAE in fp32
    else:
        pipe.vae.to(dtype)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)):
        if module is not None:
            module.requires_grad_(False)
    torch.manual_seed(0)
    add_lora(spec, pipe.unet, lora_config(spec, 16, None))
    cast_training_params(pipe.unet, dtype=torch.float32)
    if gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    pipe.unet.train()
    params = [p for p in pipe.unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2)
    pixels = torch.stack([preprocess_image(p.path, case.resolution) for p in dataset.train])
    captions = [p.caption for p in dataset.train]
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    stamps = []
    for step in range(warmup + steps):
        rows = [(step * case.batch_size + k) % len(captions) for k in range(case.batch_size)]
        with autocast:
            loss = _reference_step(pipe, is_xl, pixels[rows], [captions[r] for r in rows],
                                   noise_scheduler, case.resolution, device)  # fmt: skip
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        stamps.append(time.perf_counter())
    del pipe
    return {"it_per_s": steps / (stamps[-1] - stamps[warmup - 1])}


def _reference_step(pipe, is_xl, pixels, captions, noise_scheduler, resolution, device):
    vae = pipe.vae
    with torch.no_grad():
        latents = vae.encode(pixels.to(device, vae.dtype)).latent_dist.sample()
        latents = latents * vae.config.scaling_factor
        if is_xl:
            embeds, _, pooled, _ = pipe.encode_prompt(captions, device=device,
                                                      do_classifier_free_guidance=False)
        else:
            embeds, _ = pipe.encode_prompt(captions, device, 1, False)
    noise = torch.randn_like(latents)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                      device=device)  # fmt: skip
    noisy = noise_scheduler.add_noise(latents, noise, t)
    kwargs = {}
    if is_xl:
        ids = torch.tensor([[resolution, resolution, 0, 0, resolution, resolution]] * len(captions),
                           device=device, dtype=embeds.dtype)  # fmt: skip
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": ids}
    pred = pipe.unet(noisy.to(pipe.unet.dtype), t, encoder_hidden_states=embeds, **kwargs).sample
    return torch.nn.functional.mse_loss(pred.float(), noise.float())


# ---------------------------------------------------------------- CLIP scoring


def time_clip(quick: bool, device: torch.device, n_images: int, work: Path) -> dict:
    """Embedding throughput of CLIP ViT-B/32 (random weights) and time to score 10k images."""
    if quick:
        embedder = clip_embed.tiny_clip(seed=0, device=device)
    else:
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        weights = work / "vit-b-32-random.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        embedder = clip_embed.load_clip("ViT-B-32", weights, device=device)
    rng = np.random.default_rng(0)
    images = [draw_synthetic_image("shapes", rng, 256)[0] for _ in range(min(n_images, 64))]
    images = (images * (n_images // len(images) + 1))[:n_images]
    batch = 256 if device.type == "cuda" else 32
    embedder.embed_images(images[:batch], batch_size=batch)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    feats = embedder.embed_images(images, batch_size=batch)
    _sync(device)
    ips = n_images / (time.perf_counter() - t0)
    big = np.tile(feats, (SCORE_IMAGES // len(feats) + 1, 1))[:SCORE_IMAGES]
    big = big + rng.normal(scale=1e-3, size=big.shape).astype(np.float32)
    t0 = time.perf_counter()
    clip_fid(big, big[::-1].copy())
    fid_s = time.perf_counter() - t0
    return {
        "model": embedder.name,
        "images_per_s": ips,
        "fid_10k_s": fid_s,
        "score_10k_s": SCORE_IMAGES / ips + fid_s,
    }


# ---------------------------------------------------------------- driver


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cases = QUICK_CASES if args.quick else FULL_CASES
    steps = args.steps or (3 if args.quick else 20)
    warmup = args.warmup or (1 if args.quick else 3)
    results = {
        "device": _device_name(device),
        "mode": "quick" if args.quick else "full", "dtype": str(dtype), "steps": steps,
        "warmup": warmup, "gradient_checkpointing": args.gradient_checkpointing,
        "train": {}, "clip": None,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        for case in cases:
            if args.models and case.name not in args.models:
                continue
            log.info("benchmarking %s at %d px, batch %d", case.name, case.resolution,
                     case.batch_size)  # fmt: skip
            pdir = work / f"pipe-{case.name}"
            if args.quick:
                build_tiny_pipeline(case.catalog, pdir)
            else:
                build_full_pipeline(case, pdir, device)
            data = make_synthetic_dataset(work / f"data-{case.name}", "shapes",
                                          max(16, 2 * case.batch_size), seed=0,
                                          size=case.resolution)  # fmt: skip
            dataset = load_imagefolder(data)
            gc_flag = args.gradient_checkpointing
            ours = time_our_trainer(pdir, dataset, case, steps, warmup, work / case.name,
                                    device, dtype, gc_flag)  # fmt: skip
            ref = time_reference_loop(pdir, dataset, case, steps, warmup, device, dtype, gc_flag)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            results["train"][case.name] = {
                **asdict(case), "ours_it_per_s": ours["it_per_s"],
                "ours_total_s_incl_cache": ours["total_s"],
                "reference_it_per_s": ref["it_per_s"],
                "speedup": ours["it_per_s"] / ref["it_per_s"],
            }  # fmt: skip
        results["clip"] = time_clip(args.quick, device, 64 if args.quick else 2048, work)
    return results


def print_table(results: dict) -> None:
    print(f"\nLoRA training ({results['mode']}, {results['device']}, {results['dtype']})")
    print(f"{'model':<6} {'px':>5} {'batch':>5} {'ours it/s':>10} {'ref it/s':>9} {'speedup':>8}")
    for name, row in results["train"].items():
        print(f"{name:<6} {row['resolution']:>5} {row['batch_size']:>5} "
              f"{row['ours_it_per_s']:>10.3f} {row['reference_it_per_s']:>9.3f} "
              f"{row['speedup']:>7.2f}x")  # fmt: skip
    clip = results["clip"]
    print(f"\nCLIP {clip['model']}: {clip['images_per_s']:.1f} images/s; "
          f"score {SCORE_IMAGES} images: {clip['score_10k_s']:.1f} s "
          f"(FID on 10k features {clip['fid_10k_s']:.2f} s)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, runs on a CPU")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda if present)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    parser.add_argument("--models", nargs="*", default=None, help="subset: sd15 sdxl")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="in both loops (if batch 8 at 1024 px does not fit)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--workdir", type=Path, default=None, help="where temp models go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("t2i_train_bench", "mnc_core"):
        logging.getLogger(name).setLevel(logging.INFO)
    transformers.logging.set_verbosity_error()
    diffusers.utils.logging.set_verbosity_error()  # "modules kept in float32" notices
    results = run(args)
    print_table(results)
    out = args.out or Path(f"t2i_train_bench_{results['mode']}.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
