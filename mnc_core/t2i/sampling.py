"""Generate validation-caption images with and without the LoRA, and score them.

The model-dataset edge of the matching graph is the CLIP-FID between images the
fine-tuned pipeline generates for the dataset's validation captions and the
real validation images (variant "lora"); the same with no LoRA (variant "base")
is the "before fine-tuning" score used by the Initial baseline.

Each image `i` is drawn with its own generator seeded by (seed + i), so a batch
size change or an interrupted run that is restarted gives the same images; PNGs
are written under a temporary name and renamed, and existing ones are skipped.
Skipping is only safe for images of the same origin: `samples.json` records a
fingerprint of what drew them (the LoRA weights' hash or the base pipeline's files, seed,
steps, guidance, resolution); a folder drawn from anything else is refused with
`SamplesMismatchError`, never overwritten or deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from tqdm.auto import tqdm

from mnc_core.paths import DataLayout
from mnc_core.t2i.clip_embed import ClipEmbedder
from mnc_core.t2i.datasets import METADATA_FILE, ImageCaptionDataset
from mnc_core.t2i.lora_families import (
    FAMILY_SPECS,
    LORA_WEIGHTS_FILE,
    FamilySpec,
    add_lora,
    family_of,
    load_lora_into,
    lora_config,
)
from mnc_core.t2i.lora_training import LORA_META_FILE
from mnc_core.t2i.pipelines import load_pipeline
from mnc_core.t2i.quality import clip_fid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingConfig:
    """How validation images are generated."""

    num_inference_steps: int = 30
    guidance_scale: float | None = None  # None: the pipeline's default
    batch_size: int = 8
    resolution: int = 512
    seed: int = 0
    max_images: int | None = None  # None: one image per validation caption


def load_lora_pipeline(
    pipeline_dir: Path,
    lora_dir: Path | None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> DiffusionPipeline:
    """The base pipeline, with the LoRA in `lora_dir` loaded when given."""
    pipe = load_pipeline(pipeline_dir, device=device, dtype=dtype)
    if lora_dir is None:
        return pipe
    lora_dir = Path(lora_dir)
    weights = lora_dir / LORA_WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"LoRA weights {weights} are missing")
    spec = family_of(pipe)
    if spec.lora_save_kwarg is not None:
        pipe.load_lora_weights(str(lora_dir), weight_name=LORA_WEIGHTS_FILE)
    else:
        _inject_saved_lora(spec, getattr(pipe, spec.denoiser_attr), lora_dir)
    return pipe


def _inject_saved_lora(spec: FamilySpec, denoiser: torch.nn.Module, lora_dir: Path) -> None:
    """PixArt has no LoRA loader: inject with peft from the saved rank/alpha/targets."""
    meta_path = lora_dir / LORA_META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} is missing (needed to rebuild the LoRA config)")
    meta = json.loads(meta_path.read_text())
    saved_spec = FAMILY_SPECS.get(meta.get("family", ""), spec)
    config = lora_config(saved_spec, int(meta["rank"]), float(meta["alpha"]))
    add_lora(spec, denoiser, config)
    load_lora_into(spec, denoiser, lora_dir / LORA_WEIGHTS_FILE)
    denoiser.to(dtype=next(denoiser.parameters()).dtype)


def _call_kwargs(spec: FamilySpec, config: SamplingConfig) -> dict:
    kwargs = {
        "height": config.resolution,
        "width": config.resolution,
        "num_inference_steps": config.num_inference_steps,
    }
    if config.guidance_scale is not None:
        kwargs["guidance_scale"] = config.guidance_scale
    if spec.name in ("pixart", "sana"):
        kwargs["use_resolution_binning"] = False  # square sizes only; tiny sizes have no bins
        kwargs["clean_caption"] = False  # needs bs4/ftfy, and captions are already clean
    return kwargs


def _batch_kwargs(spec: FamilySpec, n_prompts: int) -> dict:
    """Per-batch call arguments.

    KolorsPipeline (diffusers 0.42) leaves the negative pooled embedding unset when
    `force_zeros_for_empty_prompt` meets `negative_prompt=None`, and then fails under
    guidance; an explicit empty negative prompt per caption is what its docs pass.
    """
    if spec.name == "kolors":
        return {"negative_prompt": [""] * n_prompts}
    return {}


SAMPLES_STAMP_FILE = "samples.json"


class SamplesMismatchError(ValueError):
    """A samples folder holds images drawn from another LoRA, pipeline or setting."""


def samples_fingerprint(source: str, config: SamplingConfig) -> str:
    """What decides the pixels: the source and the settings (not batch size or count)."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("batch_size", "max_images")}
    text = json.dumps({"source": source, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_stamp(stamp: Path) -> dict:
    """The recorded samples.json; a damaged one is an error naming it (never rewritten)."""
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError) as exc:
        raise SamplesMismatchError(f"{stamp} is unreadable ({exc}); move the folder away") from exc
    if not isinstance(recorded, dict):
        raise SamplesMismatchError(f"{stamp} is not a samples record; move the folder away")
    return recorded


def _check_captions(out_dir: Path, recorded: list[str] | None, captions: list[str]) -> None:
    """Refuse to pair an existing PNG with a caption other than the one it was drawn for."""
    for i, caption in enumerate(captions):
        png = out_dir / f"{i:05d}.png"
        if not png.is_file():
            continue
        if recorded is None:
            raise SamplesMismatchError(
                f"{png}: {SAMPLES_STAMP_FILE} does not record the captions its images were "
                "drawn for, so they cannot be matched to the validation captions; move the "
                "folder away to resample"
            )
        if i >= len(recorded) or recorded[i] != caption:
            was = repr(recorded[i]) if i < len(recorded) else "no recorded caption"
            raise SamplesMismatchError(
                f"{png} was drawn for {was}, not {caption!r}: the validation captions "
                "changed; move the folder away to resample"
            )


def _claim_samples_dir(out_dir: Path, fingerprint: str, captions: list[str]) -> None:
    """Create `out_dir` for `fingerprint` and `captions`, or refuse one filled otherwise.

    The captions are recorded because existing PNGs are reused by index: a PNG is only
    valid for the caption it was drawn for, and the fingerprint does not cover captions.
    """
    stamp = out_dir / SAMPLES_STAMP_FILE
    recorded_captions: list[str] = []
    if stamp.is_file():
        stored = _read_stamp(stamp)
        recorded = stored.get("fingerprint")
        if recorded != fingerprint:
            raise SamplesMismatchError(
                f"{out_dir} holds samples drawn from another LoRA/pipeline or settings "
                f"(fingerprint {recorded} != {fingerprint}); move it away to resample"
            )
        _check_captions(out_dir, stored.get("captions"), captions)
        recorded_captions = list(stored.get("captions") or [])
    elif out_dir.is_dir() and any(out_dir.glob("*.png")):
        raise SamplesMismatchError(
            f"{out_dir} holds PNGs without {SAMPLES_STAMP_FILE}: their origin is unknown; "
            "move them away to resample"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    merged = list(captions) + recorded_captions[len(captions):]
    tmp = stamp.with_name(f".{stamp.name}.tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "captions": merged}) + "\n")
    os.replace(tmp, stamp)


def _save_png(image, path: Path) -> None:
    """Write under a temporary name and rename, so an interrupted save (Ctrl-C, a
    cancelled step) never leaves a truncated PNG that a re-run would take as done."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def generate_images(
    pipe: DiffusionPipeline,
    captions: list[str],
    out_dir: Path,
    config: SamplingConfig,
    source: str = "",
) -> list[Path]:
    """One PNG per caption in `out_dir` (`00000.png`, ...), plus metadata.jsonl.

    `source` names what draws the images (e.g. the LoRA weights' hash); images
    already in `out_dir` are reused only if they came from the same source and settings.
    """
    out_dir = Path(out_dir)
    _claim_samples_dir(out_dir, samples_fingerprint(source, config), captions)
    spec = family_of(pipe)
    kwargs = _call_kwargs(spec, config)
    paths = [out_dir / f"{i:05d}.png" for i in range(len(captions))]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    batches = [todo[s : s + config.batch_size] for s in range(0, len(todo), config.batch_size)]
    for batch in tqdm(batches, desc=f"sample {spec.name}", unit="batch", disable=not batches):
        generators = [torch.Generator().manual_seed(config.seed + i) for i in batch]
        images = pipe(
            [captions[i] for i in batch],
            generator=generators,
            **kwargs,
            **_batch_kwargs(spec, len(batch)),
        ).images
        for i, image in zip(batch, images, strict=True):
            _save_png(image, paths[i])
    rows = [
        json.dumps({"file_name": p.name, "text": c})
        for p, c in zip(paths, captions, strict=True)
    ]
    (out_dir / METADATA_FILE).write_text("\n".join(rows) + "\n")
    return paths


def sample_validation(
    layout: DataLayout,
    model: str,
    dataset_id: str,
    dataset: ImageCaptionDataset,
    variant: str,
    config: SamplingConfig | None = None,
    lora_dir: Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[Path]:
    """Generate the validation captions' images into `layout.samples_dir(...)`.

    variant "lora" needs `lora_dir`; variant "base" uses the pipeline as is.
    """
    config = config or SamplingConfig()
    if variant == "lora" and lora_dir is None:
        raise ValueError("variant 'lora' needs lora_dir")
    if variant == "base" and lora_dir is not None:
        raise ValueError("variant 'base' is the pipeline without LoRA; do not pass lora_dir")
    out_dir = layout.samples_dir(model, dataset_id, variant)
    captions = [pair.caption for pair in dataset.val]
    if config.max_images is not None:
        captions = captions[: config.max_images]
    if not captions:
        raise ValueError(f"dataset {dataset.root} has no validation captions to sample")
    pipe = load_lora_pipeline(layout.model_dir(model), lora_dir, device=device, dtype=dtype)
    log.info("sampling %d %s images of %s on %s", len(captions), variant, model, dataset_id)
    return generate_images(pipe, captions, out_dir, config, _source(layout, model, lora_dir))


def _source(layout: DataLayout, model: str, lora_dir: Path | None) -> str:
    """The sample origin: the LoRA weights' hash, or the base pipeline's file listing."""
    if lora_dir is None:
        return f"base:{model}:{_pipeline_listing_digest(layout.model_dir(model))}"
    weights = (Path(lora_dir) / LORA_WEIGHTS_FILE).read_bytes()
    return f"lora:{hashlib.sha256(weights).hexdigest()}"


def _pipeline_listing_digest(model_dir: Path) -> str:
    """Hash of every file's relative path, size and mtime_ns under the pipeline folder.

    Any replaced weight file, config or scheduler changes it. It is not a content hash
    on purpose: pipelines hold multi-GB weights, and reading them all before every
    sampling run would cost minutes; a rewrite that keeps size and mtime is not expected.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).rglob("*")):
        if path.is_file():
            stat = path.stat()
            rel = path.relative_to(model_dir).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def score_samples(
    embedder: ClipEmbedder, samples: list[Path], references: list[Path], batch_size: int = 64
) -> float:
    """CLIP-FID between generated images and the real reference images."""
    if not samples or not references:
        raise ValueError("score_samples needs at least one sample and one reference image")
    feats_samples = embedder.embed_images(samples, batch_size=batch_size)
    feats_refs = embedder.embed_images(references, batch_size=batch_size)
    return clip_fid(feats_samples, feats_refs)
