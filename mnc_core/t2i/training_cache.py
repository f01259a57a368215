"""On-disk cache of VAE latents and text embeddings for one (model, dataset) pair.

The reference scripts run the VAE and the text encoders on every step; their
outputs do not change during LoRA training of the denoiser, so they are
computed once here, written as safetensors shards, and read back by row during
training (memory-mapped, so a large dataset does not have to fit in RAM).

A `cache.json` fingerprint (pipeline, images, captions, resolution, dtype) is
written last: a cache without it, or with a different fingerprint, is rebuilt in
a temporary folder and swapped in, so a stale or half-written cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from mnc_core.folders import refuse_foreign_folder, staged_folder, swap_in
from mnc_core.t2i.datasets import ImageCaptionPair, open_rgb, preprocess_image
from mnc_core.t2i.lora_families import FamilySpec, encode_captions, encode_pixels

log = logging.getLogger(__name__)

CACHE_FINGERPRINT_FILE = "cache.json"
_SHARD_SIZE = 64
_ENCODE_BATCH = 8
_CACHE_VERSION = 2  # 2: crop geometry of the upright (EXIF-rotated) image
_SHARD_KINDS = ("latents", "text")
_SHARD_PATTERNS = tuple(f"{kind}-*.safetensors" for kind in _SHARD_KINDS)


def _shard_name(kind: str, shard: int) -> str:
    """One shard's file name: the single layout the writer, the damage check and the reader use."""
    return f"{kind}-{shard:05d}.safetensors"


def _n_shards(n_items: int) -> int:
    """How many `_SHARD_SIZE`-row shards hold `n_items` rows (the last may be short)."""
    return (n_items + _SHARD_SIZE - 1) // _SHARD_SIZE


def _fingerprint(
    pipeline_dir: Path,
    pairs: list[ImageCaptionPair],
    resolution: int,
    max_len: int | None,
    dtype: torch.dtype,
) -> str:
    """Hash of everything the cached tensors depend on."""
    h = hashlib.sha256()
    index = Path(pipeline_dir) / "model_index.json"
    h.update(f"v{_CACHE_VERSION}|{Path(pipeline_dir).resolve()}|{index.read_bytes()!r}".encode())
    h.update(f"|{resolution}|{max_len}|{dtype}".encode())
    for pair in pairs:
        stat = Path(pair.path).stat()
        h.update(f"|{Path(pair.path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
        h.update(pair.caption.encode())
    return h.hexdigest()


def _crop_geometry(size: tuple[int, int], resolution: int) -> tuple[list[int], list[int]]:
    """Original (h, w) and the centre crop's (top, left) after the short-side resize.

    `size` is the (w, h) of the upright image (`open_rgb`), the one that is trained:
    the file's stored size is sideways for an EXIF-rotated photo. The resize and crop
    arithmetic is torchvision's (`Resize(resolution)`, `CenterCrop`), so the numbers
    describe the pixels the VAE saw.
    """
    w, h = size
    short, long = min(w, h), max(w, h)
    new_long = int(resolution * long / short)
    new_h, new_w = (new_long, resolution) if w <= h else (resolution, new_long)
    return [h, w], [int(round((new_h - resolution) / 2.0)), int(round((new_w - resolution) / 2.0))]


def _encode_shard(
    spec: FamilySpec, pipe, pairs: list[ImageCaptionPair], resolution: int, max_len: int | None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    latent_parts: dict[str, list[torch.Tensor]] = {}
    text_parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(pairs), _ENCODE_BATCH):
        chunk = pairs[start : start + _ENCODE_BATCH]
        upright = [open_rgb(p.path) for p in chunk]  # EXIF rotation applied once, here
        pixels = torch.stack([preprocess_image(image, resolution) for image in upright])
        latents = encode_pixels(pipe, pixels)
        geometry = [_crop_geometry(image.size, resolution) for image in upright]
        latents["original_hw"] = torch.tensor([g[0] for g in geometry])
        latents["crop_top_left"] = torch.tensor([g[1] for g in geometry])
        text = encode_captions(spec, pipe, [p.caption for p in chunk], max_len)
        for key, value in latents.items():
            latent_parts.setdefault(key, []).append(value.cpu())
        for key, value in text.items():
            text_parts.setdefault(key, []).append(value.cpu())
    latents_out = {k: torch.cat(v).contiguous() for k, v in latent_parts.items()}
    text_out = {k: torch.cat(v).contiguous() for k, v in text_parts.items()}
    return latents_out, text_out


def build_cache(
    spec: FamilySpec,
    pipe,
    pipeline_dir: Path,
    pairs: list[ImageCaptionPair],
    cache_dir: Path,
    resolution: int,
    max_len: int | None,
) -> TrainingCache:
    """Encode `pairs` once into `cache_dir` (reused when the fingerprint matches)."""
    cache_dir = Path(cache_dir)
    fingerprint = _fingerprint(pipeline_dir, pairs, resolution, max_len, pipe.dtype)
    if _stored_fingerprint(cache_dir / CACHE_FINGERPRINT_FILE) == fingerprint:
        damaged = _damaged_shard(cache_dir, len(pairs))
        if damaged is None:
            log.info("reusing cached latents and text embeddings in %s", cache_dir)
            return TrainingCache(cache_dir)
        log.warning("%s is damaged; rebuilding the training cache %s", damaged, cache_dir)
    _refuse_foreign_cache(cache_dir)
    with staged_folder(cache_dir) as tmp:
        _write_shards(spec, pipe, pairs, tmp, resolution, max_len)
        meta = {"fingerprint": fingerprint, "n_items": len(pairs), "shard_size": _SHARD_SIZE}
        (tmp / CACHE_FINGERPRINT_FILE).write_text(json.dumps(meta, indent=2))
        _refuse_foreign_cache(cache_dir)  # again: the folder may have changed while encoding
        swap_in(tmp, cache_dir)
    return TrainingCache(cache_dir)


def _write_shards(
    spec: FamilySpec, pipe, pairs: list[ImageCaptionPair], folder: Path, resolution: int,
    max_len: int | None,
) -> None:
    """Encode `pairs` into `_SHARD_SIZE`-row latents/text safetensors shards in `folder`."""
    for shard in tqdm(range(_n_shards(len(pairs))), desc="encode latents+text", unit="shard"):
        rows = pairs[shard * _SHARD_SIZE : (shard + 1) * _SHARD_SIZE]
        latents, text = _encode_shard(spec, pipe, rows, resolution, max_len)
        save_file(latents, str(folder / _shard_name("latents", shard)))
        save_file(text, str(folder / _shard_name("text", shard)))


def _refuse_foreign_cache(cache_dir: Path) -> None:
    """Only a training cache (cache.json + our shards) may be replaced: never user data."""
    refuse_foreign_folder(cache_dir, CACHE_FINGERPRINT_FILE, _SHARD_PATTERNS, "training cache")


def _damaged_shard(cache_dir: Path, n_items: int) -> Path | None:
    """The first missing or unreadable shard of a cache, else None.

    The cache is derived data, so a truncated shard (an interrupted copy, a full disk)
    is rebuilt rather than failing every later run; opening a shard reads its header
    and checks it against the file size, without reading the tensors.
    """
    for shard in range(_n_shards(n_items)):
        for kind in _SHARD_KINDS:
            path = cache_dir / _shard_name(kind, shard)
            try:
                with safe_open(str(path), framework="pt") as handle:
                    handle.keys()
            except (SafetensorError, OSError):
                return path
    return None


def _stored_fingerprint(marker: Path) -> str | None:
    """The fingerprint a cache was built with; None (rebuild) if absent or damaged."""
    try:
        return json.loads(marker.read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


@dataclass
class TrainingCache:
    """Row access to a built cache: `rows(indices)` -> (latent tensors, text tensors)."""

    root: Path

    def __post_init__(self) -> None:
        meta = json.loads((Path(self.root) / CACHE_FINGERPRINT_FILE).read_text())
        self.n_items: int = int(meta["n_items"])
        self.shard_size: int = int(meta["shard_size"])
        self._handles: dict[str, object] = {}

    def _handle(self, kind: str, shard: int):
        name = _shard_name(kind, shard)
        if name not in self._handles:
            self._handles[name] = safe_open(str(Path(self.root) / name), framework="pt")
        return self._handles[name]

    def _rows(self, kind: str, indices: list[int]) -> dict[str, torch.Tensor]:
        parts: dict[str, list[torch.Tensor]] = {}
        for index in indices:
            handle = self._handle(kind, index // self.shard_size)
            row = index % self.shard_size
            for key in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                parts.setdefault(key, []).append(handle.get_slice(key)[row : row + 1])
        return {k: torch.cat(v) for k, v in parts.items()}

    def rows(self, indices: list[int]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return self._rows("latents", indices), self._rows("text", indices)
