"""LoRA fine-tuning of any supported text-to-image pipeline, resumable and reproducible.

One loop for every family (the family-specific parts are in `lora_families.py`),
written step by step like the diffusers reference scripts, with three changes:

1. VAE latents and text embeddings are computed once per (model, dataset) and
   read from an on-disk cache (`training_cache.py`); the VAE and text encoders
   are dropped before the loop.
2. The data order and every random draw of step `s` come from a generator
   seeded by (seed, s), not from the RNG history, so a run interrupted and
   resumed from a checkpoint ends with exactly the weights of an uninterrupted one.
3. Checkpoints are safetensors only (LoRA in the diffusers format, optimizer
   state as tensors, RNG states as tensors) plus a JSON, written to a temporary
   folder and renamed, so a finished checkpoint is never replaced by a partial one.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers.training_utils import cast_training_params
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from mnc_core.folders import staged_folder
from mnc_core.t2i.datasets import ImageCaptionDataset, ImageCaptionPair
from mnc_core.t2i.lora_families import (
    LORA_WEIGHTS_FILE,
    FamilySpec,
    add_lora,
    add_noise,
    family_of,
    latent_transform,
    load_lora_into,
    lora_config,
    predict,
    save_lora,
    sdxl_time_ids,
    training_scheduler,
)
from mnc_core.t2i.pipelines import load_pipeline
from mnc_core.t2i.training_cache import TrainingCache, build_cache

log = logging.getLogger(__name__)

STATE_FILE = "train_state.json"
LORA_META_FILE = "lora_config.json"
FINAL_DIR = "final"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
#: Config fields that may change between a run and its resumption.
_RESUMABLE_CHANGES = frozenset({"max_steps", "checkpoint_every", "keep_checkpoints"})


@dataclass(frozen=True)
class LoraTrainConfig:
    """LoRA fine-tuning settings; the defaults are the paper's (Section 5.1)."""

    max_steps: int = 10_000
    batch_size: int = 8
    learning_rate: float = 1e-5
    rank: int = 16
    alpha: float | None = None  # None: alpha = rank (scale 1)
    resolution: int = 512
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    weighting_scheme: str = "none"  # flow families: none | logit_normal | mode
    guidance_scale: float = 3.5  # only for guidance-distilled transformers (Flux-dev)
    max_sequence_length: int | None = None  # None: the family's default
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        names = ("max_steps", "batch_size", "rank", "resolution", "checkpoint_every",
                 "keep_checkpoints")  # keep_checkpoints 0 kept all (a [:-0] slice), -1 none
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"LoraTrainConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class TrainResult:
    """Where the final LoRA is and how training went."""

    lora_dir: Path
    family: str
    steps: int
    losses: list[float] = field(default_factory=list)
    it_per_s: float = 0.0
    resumed_from: int = 0


StepCallback = Callable[[int, float], None]


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator that depends on (seed, step) only."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63 - 1))


def batch_indices(seed: int, step: int, batch_size: int, n_items: int) -> list[int]:
    """Dataset rows of `step` (1-based): epoch-wise permutations seeded by (seed, epoch)."""
    out = []
    for slot in range(batch_size):
        position = (step - 1) * batch_size + slot
        epoch, offset = divmod(position, n_items)
        perm = torch.randperm(n_items, generator=step_generator(seed + 7919, epoch))
        out.append(int(perm[offset]))
    return out


# ---------------------------------------------------------------- checkpoints


def _checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    found = []
    if out_dir.is_dir():
        for child in out_dir.iterdir():
            match = _CHECKPOINT_RE.match(child.name)
            if match and (child / STATE_FILE).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    state = optimizer.state_dict()
    tensors = {
        f"{pid}.{name}": value.detach().cpu().contiguous()
        for pid, entry in state["state"].items()
        for name, value in entry.items()
    }
    return tensors, state["param_groups"]


def _load_optimizer(optimizer: torch.optim.Optimizer, folder: Path, groups: list) -> None:
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_tensors() -> dict[str, torch.Tensor]:
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda.{i}"] = s
    return rng


def _restore_rng(folder: Path) -> None:
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["cpu"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _write_lora_meta(folder: Path, spec: FamilySpec, config: LoraTrainConfig, base: Path) -> None:
    meta = {
        "family": spec.name,
        "denoiser": spec.denoiser_attr,
        "rank": config.rank,
        "alpha": config.alpha if config.alpha is not None else config.rank,
        "target_modules": list(spec.target_modules),
        "base_pipeline": str(Path(base).resolve()),
    }
    (folder / LORA_META_FILE).write_text(json.dumps(meta, indent=2))


def _atomic_folder(final: Path, write: Callable[[Path], None]) -> None:
    """Write a folder via `write(tmp)` then rename; an existing `final` is kept.

    The staging folder follows the one staging rule (`mnc_core.folders.staged_folder`):
    an interrupted write removes it, a killed one is swept by the next write.
    """
    with staged_folder(final) as tmp:
        write(tmp)
        if final.exists():
            raise FileExistsError(f"{final} already exists; not replacing a finished folder")
        os.replace(tmp, final)


@dataclass
class _Run:
    """Everything the loop touches, bundled so each step function stays short."""

    spec: FamilySpec
    denoiser: torch.nn.Module
    scheduler: object
    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    cache: TrainingCache
    config: LoraTrainConfig
    pipeline_dir: Path
    device: torch.device
    dtype: torch.dtype
    shift: float
    scale: float
    losses: list[float]
    data_digest: str = ""  # what it trains on: checked on resume and reuse


def _write_state(folder: Path, run: _Run, step: int, **extra: object) -> None:
    """The train_state.json of a checkpoint or of final/: what `_finished` and `_resume`
    check (config, training data) and restore (losses; `extra` e.g. param_groups)."""
    state = {
        "step": step,
        "family": run.spec.name,
        "config": dataclasses.asdict(run.config),
        **extra,
        "losses": run.losses,
        "train_data": run.data_digest,
    }
    (folder / STATE_FILE).write_text(json.dumps(state))


def _save_checkpoint(run: _Run, out_dir: Path, step: int) -> None:
    def write(tmp: Path) -> None:
        save_lora(run.spec, run.denoiser, tmp)
        _write_lora_meta(tmp, run.spec, run.config, run.pipeline_dir)
        tensors, groups = _optimizer_tensors(run.optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        save_file(_rng_tensors(), str(tmp / "rng.safetensors"))
        _write_state(tmp, run, step, param_groups=groups)

    _atomic_folder(out_dir / f"checkpoint-{step:06d}", write)
    for _, old in _checkpoints(out_dir)[: -run.config.keep_checkpoints]:
        shutil.rmtree(old)
    log.info("checkpoint at step %d written to %s", step, out_dir)


def _read_state(path: Path) -> dict:
    """A finished folder's JSON state; a damaged one is an error naming the file."""
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); move the folder away to retrain") from exc
    if not isinstance(state, dict) or "step" not in state or "config" not in state:
        raise ValueError(f"{path} lacks 'step'/'config'; move the folder away to retrain")
    return state


def _check_same_run(saved: dict, config: LoraTrainConfig, where: Path) -> None:
    now = dataclasses.asdict(config)
    diff = {
        k: (saved.get(k), v)
        for k, v in now.items()
        if k not in _RESUMABLE_CHANGES and saved.get(k) != v
    }
    if diff:
        raise ValueError(f"{where} was trained with a different config (saved, now): {diff}")


def train_data_digest(pairs: list[ImageCaptionPair]) -> str:
    """Hash of the training pairs in order (image bytes' digest and caption).

    Recorded in checkpoints and the final state: resuming or reusing a run after the
    training images or captions changed would mix or misreport data.
    """
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(f"{pair.sha256}\0{pair.caption}\0".encode())
    return digest.hexdigest()


def _check_same_data(state: dict, digest: str, where: Path) -> None:
    """Refuse a run trained on other data (states written before this check carry none)."""
    saved = state.get("train_data")
    if saved is not None and saved != digest:
        raise ValueError(
            f"{where} was trained on other data (the training images or captions changed); "
            f"move {where.parent} away to retrain"
        )


@contextmanager
def _damaged_checkpoint_file(path: Path) -> Iterator[None]:
    """Turn safetensors' path-less errors on a truncated/corrupt file into one naming it.

    A checkpoint is the user's training progress, so it is never deleted or rebuilt here:
    the message says to move the folder away (training then resumes from an older one).
    """
    try:
        yield
    except (SafetensorError, OSError, KeyError) as exc:
        raise ValueError(
            f"{path} is damaged ({exc}); move the checkpoint folder {path.parent} away to "
            "resume from an older checkpoint or retrain"
        ) from exc


def _resume(run: _Run, out_dir: Path) -> int:
    """Load the latest complete checkpoint; return its step (0 when none)."""
    found = _checkpoints(out_dir)
    if not found:
        return 0
    step, folder = found[-1]
    state = _read_state(folder / STATE_FILE)
    _check_same_run(state["config"], run.config, folder)
    _check_same_data(state, run.data_digest, folder)
    with _damaged_checkpoint_file(folder / LORA_WEIGHTS_FILE):
        load_lora_into(run.spec, run.denoiser, folder / LORA_WEIGHTS_FILE)
    with _damaged_checkpoint_file(folder / "optimizer.safetensors"):
        _load_optimizer(run.optimizer, folder, state["param_groups"])
    with _damaged_checkpoint_file(folder / "rng.safetensors"):
        _restore_rng(folder)
    run.losses[:] = state["losses"]
    log.info("resuming from %s (step %d)", folder, step)
    return step


# ---------------------------------------------------------------- one step


def _train_step(run: _Run, step: int) -> float:
    config = run.config
    gen = step_generator(config.seed, step)
    rows = batch_indices(config.seed, step, config.batch_size, run.cache.n_items)
    lat, text = run.cache.rows(rows)
    sample = lat["latent_mean"] + lat["latent_std"] * torch.randn(
        lat["latent_mean"].shape, generator=gen
    )
    latents = (sample - run.shift) * run.scale
    noise = torch.randn(latents.shape, generator=gen)
    batch = add_noise(run.spec, run.scheduler, latents, noise, gen, config.weighting_scheme)
    to_dev = {"device": run.device, "dtype": run.dtype}
    batch.noisy = batch.noisy.to(**to_dev)
    text = {k: v.to(run.device, dtype=run.dtype if v.is_floating_point() else v.dtype)
            for k, v in text.items()}  # fmt: skip
    time_ids = None
    if run.spec.time_ids:
        time_ids = sdxl_time_ids(lat["original_hw"], lat["crop_top_left"], config.resolution)
        time_ids = time_ids.to(**to_dev)
    # fp32 LoRA weights, bf16 frozen weights: autocast runs the LoRA matmuls in bf16 too
    with torch.autocast(run.device.type, dtype=run.dtype, enabled=run.dtype != torch.float32):
        pred = predict(run.spec, run.denoiser, batch, text, time_ids, config.guidance_scale)
    target = batch.target.to(run.device, torch.float32)
    weighting = batch.weighting.to(run.device, torch.float32)
    loss = (weighting * (pred.float() - target) ** 2).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.params, config.max_grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


# ---------------------------------------------------------------- setup and loop


def _prepare(
    pipeline_dir: Path,
    dataset: ImageCaptionDataset,
    cache_dir: Path,
    config: LoraTrainConfig,
    device: torch.device,
    dtype: torch.dtype,
) -> _Run:
    """Load the pipeline, build/reuse the cache, keep only the denoiser, add the LoRA."""
    if not dataset.train:
        raise ValueError(f"dataset {dataset.root} has no training pairs")
    pipe = load_pipeline(pipeline_dir, device=device, dtype=dtype)
    spec = family_of(pipe)
    cache = build_cache(
        spec, pipe, pipeline_dir, dataset.train, cache_dir, config.resolution,
        config.max_sequence_length,
    )  # fmt: skip
    denoiser = getattr(pipe, spec.denoiser_attr)
    scheduler = training_scheduler(spec, pipe)
    shift, scale = latent_transform(pipe)
    del pipe  # the VAE and text encoders are not needed any more
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    denoiser.requires_grad_(False)
    torch.manual_seed(config.seed)  # LoRA init (gaussian A, zero B) depends on the seed only
    add_lora(spec, denoiser, lora_config(spec, config.rank, config.alpha))
    if dtype != torch.float32:
        cast_training_params(denoiser, dtype=torch.float32)
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    denoiser.train()
    params = [p for p in denoiser.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.adam_weight_decay, eps=config.adam_epsilon,
        fused=torch.device(device).type == "cuda",
    )  # fmt: skip
    return _Run(
        spec, denoiser, scheduler, optimizer, params, cache, config, Path(pipeline_dir),
        torch.device(device), dtype, shift, scale, [],
    )  # fmt: skip


def _finished(out_dir: Path, config: LoraTrainConfig, digest: str) -> TrainResult | None:
    final = out_dir / FINAL_DIR
    if not (final / STATE_FILE).is_file():
        return None
    state = _read_state(final / STATE_FILE)
    _check_same_run(state["config"], config, final)
    _check_same_data(state, digest, final)
    if state["step"] != config.max_steps:
        raise ValueError(
            f"{final} holds a finished run of {state['step']} steps, not {config.max_steps}"
        )
    log.info("LoRA already trained in %s", final)
    return TrainResult(final, state["family"], state["step"], state["losses"])


def train_lora(
    pipeline_dir: Path,
    dataset: ImageCaptionDataset,
    out_dir: Path,
    config: LoraTrainConfig | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: StepCallback | None = None,
    cache_dir: Path | None = None,
) -> TrainResult:
    """Fine-tune a LoRA on `dataset.train`; resume from `out_dir`'s last checkpoint.

    `cache_dir` (default `out_dir/cache`; the pipeline stage passes
    `DataLayout.cache_dir(model, dataset)`) holds the encoded latents and text.
    `progress(step, loss)` is called after every step. The final LoRA is in
    `out_dir/final/pytorch_lora_weights.safetensors`.
    """
    config = config or LoraTrainConfig()
    out_dir = Path(out_dir)
    digest = train_data_digest(dataset.train)
    done = _finished(out_dir, config, digest)
    if done is not None:
        return done
    run = _prepare(
        Path(pipeline_dir), dataset, Path(cache_dir or out_dir / "cache"), config,
        torch.device(device), dtype,
    )  # fmt: skip
    run.data_digest = digest
    start = _resume(run, out_dir)
    t0 = time.perf_counter()
    bar = tqdm(total=config.max_steps, initial=start, desc=f"LoRA {run.spec.name}", unit="step")
    for step in range(start + 1, config.max_steps + 1):
        loss = _train_step(run, step)
        run.losses.append(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if progress is not None:
            progress(step, loss)
        if step % config.checkpoint_every == 0 and step < config.max_steps:
            _save_checkpoint(run, out_dir, step)
    bar.close()
    elapsed = time.perf_counter() - t0
    it_per_s = (config.max_steps - start) / elapsed if elapsed > 0 else 0.0
    _save_final(run, out_dir)
    log.info("trained %d steps (%.2f it/s) into %s", config.max_steps, it_per_s, out_dir)
    return TrainResult(
        out_dir / FINAL_DIR, run.spec.name, config.max_steps, run.losses, it_per_s, start
    )


def _save_final(run: _Run, out_dir: Path) -> None:
    def write(tmp: Path) -> None:
        save_lora(run.spec, run.denoiser, tmp)
        _write_lora_meta(tmp, run.spec, run.config, run.pipeline_dir)
        _write_state(tmp, run, run.config.max_steps)

    _atomic_folder(out_dir / FINAL_DIR, write)
