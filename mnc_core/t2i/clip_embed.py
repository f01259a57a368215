"""CLIP image embeddings of datasets: the dataset feature and the statistics for FID edges.

Every dataset node of the matching graph needs (a) its mean CLIP image embedding
(the dataset feature of the ranker) and (b) the Gaussian statistics (mu, Sigma) of
its embeddings, from which dataset-dataset FID edges are computed. Embedding a
dataset is the expensive part, so the result is cached on disk (the caller passes
`DataLayout.embeddings_dir(...)`) and keyed by the dataset's files and the model's
weights: a changed dataset or model is re-embedded, an unchanged one is not.

Models are open_clip models built from a config name and a *local* checkpoint file
(or an open_clip `local-dir:` folder); nothing is ever downloaded. Tests and the demo
use `tiny_clip()`, a random-weight model from the config shipped in
`mnc_core/t2i/clip_configs/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from mnc_core.folders import refuse_foreign_folder, staged_folder, swap_in
from mnc_core.ids import slugify
from mnc_core.t2i.datasets import (
    DEFAULT_MIN_PAIRS,
    DEFAULT_MIN_SIDE,
    IMAGE_EXTENSIONS,
    METADATA_FILE,
    load_imagefolder,
    open_rgb,
)
from mnc_core.t2i.quality import frechet_from_stats, gaussian_stats

log = logging.getLogger(__name__)

CLIP_CONFIG_DIR = Path(__file__).parent / "clip_configs"
TINY_CLIP_NAME = "tiny-vit"
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CACHE_FORMAT_VERSION = 1
_PRECISION_BY_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
_CACHE_ARRAYS = ("embeddings", "mean", "mu", "sigma")
_KEY_FILE = "key.json"


class ClipLoadError(ValueError):
    """A CLIP model that cannot be built offline from what was given."""


def _register_shipped_configs() -> None:
    """Make open_clip aware of the configs shipped with this package (idempotent)."""
    if TINY_CLIP_NAME not in open_clip.list_models():
        open_clip.add_model_config(CLIP_CONFIG_DIR)


def shipped_config_names() -> list[str]:
    """Names of the CLIP configs shipped in this package (random weights, for tests/demo)."""
    return sorted(p.stem for p in CLIP_CONFIG_DIR.glob("*.json"))


@dataclass
class ClipEmbedder:
    """An open_clip model in eval mode with its inference preprocessing.

    `fingerprint` identifies the weights (checkpoint digest, or config + seed for
    random ones); it is part of the embedding cache key.
    """

    name: str
    model: torch.nn.Module
    preprocess: Any
    device: torch.device
    dtype: torch.dtype
    fingerprint: str

    @property
    def slug(self) -> str:
        """The model name as a slug, for `DataLayout.embeddings_dir(embedder.slug, dataset)`."""
        return slugify(self.name)

    def embed_images(
        self, images: Sequence[Path | str | Image.Image], batch_size: int = 64
    ) -> np.ndarray:
        """L2-normalised image embeddings, float32 N x D, in the order given."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        input_dtype = open_clip.get_input_dtype(_PRECISION_BY_DTYPE[self.dtype])
        chunks = []
        starts = range(0, len(images), batch_size)
        with torch.no_grad():
            for start in tqdm(starts, desc=f"CLIP {self.name}", unit="batch",
                              disable=len(starts) < 2):
                batch = torch.stack([
                    self._pixels(item) for item in images[start:start + batch_size]
                ]).to(device=self.device, dtype=input_dtype)
                features = self.model.encode_image(batch).float()
                chunks.append(F.normalize(features, dim=-1).cpu().numpy())
        if not chunks:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32)

    def _pixels(self, item: Path | str | Image.Image) -> torch.Tensor:
        """One preprocessed image; Pillow's errors (e.g. truncated file) do not name it."""
        try:
            return self.preprocess(open_rgb(item))
        except OSError as exc:
            name = item if isinstance(item, (str, Path)) else "an in-memory image"
            raise OSError(f"{name}: cannot read image ({exc})") from exc

    @property
    def embed_dim(self) -> int:
        return int(self.model.visual.output_dim)


def _resolve_dtype(device: torch.device, dtype: torch.dtype | None) -> torch.dtype:
    """bf16 on GPU, fp32 on CPU unless asked otherwise."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _PRECISION_BY_DTYPE:
        raise ClipLoadError(
            f"unsupported CLIP dtype {dtype}; use one of {list(_PRECISION_BY_DTYPE)}"
        )
    return dtype


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _checkpoint_source(name: str, checkpoint: Path) -> tuple[str, str | None, str]:
    """(model_name, pretrained, fingerprint) for open_clip from a local file or folder."""
    checkpoint = Path(checkpoint).resolve()
    if checkpoint.is_dir():
        config = checkpoint / "open_clip_config.json"
        if not config.is_file():
            raise ClipLoadError(f"{checkpoint}: a CLIP folder needs open_clip_config.json")
        weights = sorted(p for p in checkpoint.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        digest = hashlib.sha256(config.read_bytes())
        for path in weights:
            digest.update(_file_sha256(path).encode())
        return f"local-dir:{checkpoint}", None, digest.hexdigest()
    if not checkpoint.is_file():
        raise ClipLoadError(f"CLIP checkpoint {checkpoint} does not exist (no download is tried)")
    if checkpoint.suffix not in CHECKPOINT_SUFFIXES:
        raise ClipLoadError(f"CLIP checkpoint {checkpoint}: expected one of {CHECKPOINT_SUFFIXES}")
    if checkpoint.suffix != ".safetensors":
        log.warning("%s is not safetensors; loading it with torch.load(weights_only=True)",
                    checkpoint)
    if name not in open_clip.list_models():
        raise ClipLoadError(f"unknown open_clip config {name!r} for checkpoint {checkpoint}")
    # An absolute path can never be mistaken for one of open_clip's download tags.
    return name, str(checkpoint), _file_sha256(checkpoint)


def load_clip(
    name: str,
    checkpoint: Path | None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> ClipEmbedder:
    """Build open_clip model `name` with weights from the local `checkpoint` (never downloads).

    `checkpoint` is a weights file (safetensors preferred; .pt/.bin load with
    `weights_only=True`) or an open_clip folder with `open_clip_config.json`. Without
    a checkpoint only the configs shipped in this package are accepted (random weights,
    seed 0): real CLIP-FID needs trained weights, so a missing file is an error.
    """
    _register_shipped_configs()
    if checkpoint is None:
        if name in shipped_config_names():
            return tiny_clip(seed=0, device=device, name=name)
        raise ClipLoadError(
            f"no checkpoint given for CLIP model {name!r}: pass a local weights file "
            f"(random-weight configs shipped here: {shipped_config_names()})"
        )
    model_name, pretrained, fingerprint = _checkpoint_source(name, Path(checkpoint))
    device = torch.device(device)
    dtype = _resolve_dtype(device, dtype)
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=pretrained, precision=_PRECISION_BY_DTYPE[dtype], device=device,
        pretrained_image=False, pretrained_text=False, weights_only=True,
    )
    log.info("loaded CLIP %s from %s on %s (%s)", name, checkpoint, device, dtype)
    return ClipEmbedder(name, model.eval(), preprocess, device, dtype, f"{name}:{fingerprint}")


def tiny_clip(
    seed: int = 0,
    device: str | torch.device = "cpu",
    name: str = TINY_CLIP_NAME,
) -> ClipEmbedder:
    """A random-weight CLIP from a config shipped in this package, for tests and the demo.

    Runs in fp32 on any device; the global torch RNG is left untouched.
    """
    _register_shipped_configs()
    if name not in shipped_config_names():
        raise ClipLoadError(f"{name!r} is not a shipped CLIP config ({shipped_config_names()})")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=None, device=device, pretrained_image=False, pretrained_text=False,
        )
    config_digest = hashlib.sha256((CLIP_CONFIG_DIR / f"{name}.json").read_bytes()).hexdigest()
    fingerprint = f"{name}:random:seed={seed}:{config_digest[:16]}"
    return ClipEmbedder(name, model.eval(), preprocess, device, torch.float32, fingerprint)


@dataclass
class DatasetEmbedding:
    """A dataset's CLIP embeddings (L2-normalised, one row per file) and their statistics.

    `mean` is the dataset feature of the ranker; `mu`/`sigma` (float64) feed FID.
    """

    embeddings: np.ndarray
    mean: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    files: list[str]
    key: str
    cache_hit: bool = False


def dataset_cache_key(embedder: ClipEmbedder, dataset_dir: Path, min_side: int) -> str:
    """Key of a dataset's embeddings: model weights + metadata bytes + every image's size/mtime.

    Cheap to compute (no image is decoded), and any added, removed, edited or re-captioned
    file changes it.
    """
    dataset_dir = Path(dataset_dir)
    digest = hashlib.sha256()
    for part in (f"v{CACHE_FORMAT_VERSION}", embedder.fingerprint, f"min_side={min_side}"):
        digest.update(part.encode() + b"\0")
    meta = dataset_dir / METADATA_FILE
    digest.update(meta.read_bytes() if meta.is_file() else b"<no metadata>")
    for path in sorted(dataset_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            stat = path.stat()
            rel = path.relative_to(dataset_dir).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _read_cache(cache_dir: Path, key: str) -> DatasetEmbedding | None:
    key_path = cache_dir / _KEY_FILE
    if not key_path.is_file():
        return None
    try:
        meta = json.loads(key_path.read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return None
        arrays = {n: np.load(cache_dir / f"{n}.npy", allow_pickle=False) for n in _CACHE_ARRAYS}
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable embedding cache (%s); re-embedding", cache_dir, err)
        return None
    if arrays["embeddings"].shape[0] != len(meta.get("files", [])):
        log.warning("%s: embedding cache is inconsistent; re-embedding", cache_dir)
        return None
    return DatasetEmbedding(**arrays, files=list(meta["files"]), key=key, cache_hit=True)


def _refuse_foreign_cache(cache_dir: Path) -> None:
    """Only an embedding cache (key.json + our .npy files) may be replaced: never user data."""
    refuse_foreign_folder(cache_dir, _KEY_FILE, [f"{n}.npy" for n in _CACHE_ARRAYS],
                          "CLIP embedding cache")


def _write_cache(cache_dir: Path, result: DatasetEmbedding, clip_name: str) -> None:
    """Write all files to a staging folder, then swap it in: readers never see a half cache."""
    with staged_folder(cache_dir) as staging:
        for name in _CACHE_ARRAYS:
            np.save(staging / f"{name}.npy", getattr(result, name), allow_pickle=False)
        meta = {"key": result.key, "clip": clip_name, "files": result.files,
                "n": len(result.files), "dim": int(result.embeddings.shape[1])}
        (staging / _KEY_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        _refuse_foreign_cache(cache_dir)  # again: the folder may have changed while embedding
        swap_in(staging, cache_dir)


def embed_dataset(
    embedder: ClipEmbedder,
    dataset_dir: Path,
    cache_dir: Path,
    *,
    batch_size: int = 64,
    min_pairs: int = DEFAULT_MIN_PAIRS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> DatasetEmbedding:
    """Embeddings + statistics of every valid image of the dataset, from cache when unchanged.

    The dataset is validated with `load_imagefolder` (bad files are skipped, not embedded).
    `cache_dir` is normally `DataLayout(root).embeddings_dir(embedder.slug, dataset_id)`.
    """
    dataset_dir, cache_dir = Path(dataset_dir), Path(cache_dir)
    key = dataset_cache_key(embedder, dataset_dir, min_side)
    cached = _read_cache(cache_dir, key)
    if cached is not None:
        log.info("%s: CLIP embeddings from cache %s", dataset_dir, cache_dir)
        return cached
    _refuse_foreign_cache(cache_dir)
    dataset = load_imagefolder(dataset_dir, min_pairs=min_pairs, min_side=min_side)
    pairs = dataset.pairs
    embeddings = embedder.embed_images([p.path for p in pairs], batch_size=batch_size)
    mu, sigma = gaussian_stats(embeddings)
    result = DatasetEmbedding(
        embeddings=embeddings, mean=embeddings.mean(axis=0), mu=mu, sigma=sigma,
        files=[p.path.relative_to(dataset_dir).as_posix() for p in pairs], key=key,
    )
    _write_cache(cache_dir, result, embedder.name)
    log.info("%s: embedded %d images with %s into %s", dataset_dir, len(pairs), embedder.name,
             cache_dir)
    return result


def dataset_fid(emb_a: DatasetEmbedding, emb_b: DatasetEmbedding) -> float:
    """Dataset-dataset edge: Frechet distance between the two datasets' CLIP Gaussians."""
    return frechet_from_stats(emb_a.mu, emb_a.sigma, emb_b.mu, emb_b.sigma)
