"""CLIP embeddings: offline loading, batching, and the on-disk cache (hit, miss, repair)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from mnc_core.paths import DataLayout
from mnc_core.t2i.clip_embed import (
    CLIP_CONFIG_DIR,
    TINY_CLIP_NAME,
    ClipEmbedder,
    ClipLoadError,
    dataset_fid,
    embed_dataset,
    load_clip,
    tiny_clip,
)
from mnc_core.t2i.datasets import METADATA_FILE
from mnc_core.t2i.synthetic_data import make_synthetic_dataset


def _images(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def test_tiny_clip_is_seeded_and_leaves_the_global_rng_alone(small_dataset: Path) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = tiny_clip(seed=0), tiny_clip(seed=0), tiny_clip(seed=1)
    assert torch.equal(torch.rand(1), expected_next)
    images = _images(small_dataset)[:4]
    ea, eb, ec = (m.embed_images(images) for m in (a, b, c))
    assert np.array_equal(ea, eb)
    assert not np.allclose(ea, ec)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_embeddings_are_unit_norm_ordered_and_batch_independent(
    small_dataset: Path, tiny_embedder: ClipEmbedder
) -> None:
    images = _images(small_dataset)
    full = tiny_embedder.embed_images(images, batch_size=5)
    assert full.shape == (12, tiny_embedder.embed_dim) and full.dtype == np.float32
    assert np.allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)
    one_by_one = tiny_embedder.embed_images(images, batch_size=1)
    assert np.allclose(full, one_by_one, atol=1e-5)
    reversed_emb = tiny_embedder.embed_images(images[::-1], batch_size=5)
    assert np.allclose(reversed_emb[::-1], full, atol=1e-5)
    as_pil = tiny_embedder.embed_images([Image.open(p) for p in images[:3]])
    assert np.allclose(as_pil, full[:3], atol=1e-5)
    assert len({tuple(np.round(row, 4)) for row in full}) == 12, "different images, different rows"


def _save_tiny_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return path


def test_load_clip_from_a_local_safetensors_file(
    tmp_path: Path, small_dataset: Path
) -> None:
    source = tiny_clip(seed=5)
    checkpoint = _save_tiny_checkpoint(source.model, tmp_path / "tiny.safetensors")
    loaded = load_clip(TINY_CLIP_NAME, checkpoint, device="cpu")
    assert loaded.dtype == torch.float32
    images = _images(small_dataset)[:4]
    assert np.allclose(loaded.embed_images(images), source.embed_images(images), atol=1e-5)
    # different weights, different fingerprint (so a different cache key)
    other = _save_tiny_checkpoint(tiny_clip(seed=6).model, tmp_path / "other.safetensors")
    assert load_clip(TINY_CLIP_NAME, other).fingerprint != loaded.fingerprint


def test_load_clip_from_an_open_clip_local_dir(tmp_path: Path, small_dataset: Path) -> None:
    source = tiny_clip(seed=2)
    folder = tmp_path / "clip-dir"
    folder.mkdir()
    model_cfg = json.loads((CLIP_CONFIG_DIR / f"{TINY_CLIP_NAME}.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    _save_tiny_checkpoint(source.model, folder / "open_clip_model.safetensors")
    loaded = load_clip("my-tiny", folder)
    images = _images(small_dataset)[:3]
    assert np.allclose(loaded.embed_images(images), source.embed_images(images), atol=1e-5)


def test_load_clip_refuses_what_it_cannot_load_offline(tmp_path: Path) -> None:
    with pytest.raises(ClipLoadError, match="no checkpoint given"):
        load_clip("ViT-B-32", None)
    with pytest.raises(ClipLoadError, match="does not exist"):
        load_clip("ViT-B-32", tmp_path / "missing.safetensors")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(ClipLoadError, match="expected one of"):
        load_clip("ViT-B-32", tmp_path / "weights.npz")
    (tmp_path / "w.safetensors").write_bytes(b"x")
    with pytest.raises(ClipLoadError, match="unknown open_clip config"):
        load_clip("no-such-model", tmp_path / "w.safetensors")
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(ClipLoadError, match="open_clip_config.json"):
        load_clip("x", tmp_path / "empty-dir")


def test_load_clip_without_checkpoint_accepts_only_shipped_configs() -> None:
    embedder = load_clip(TINY_CLIP_NAME, None)
    assert embedder.fingerprint == tiny_clip(seed=0).fingerprint


def test_embed_dataset_cache_miss_then_hit(
    tmp_path: Path, small_dataset: Path, tiny_embedder: ClipEmbedder
) -> None:
    cache = DataLayout(tmp_path / "root").embeddings_dir(tiny_embedder.slug, "shapes")
    first = embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1)
    assert not first.cache_hit
    assert first.embeddings.shape == (12, tiny_embedder.embed_dim)
    assert np.allclose(first.mean, first.embeddings.mean(axis=0))
    assert np.allclose(first.mu, first.embeddings.mean(axis=0))
    assert np.allclose(first.sigma, np.cov(first.embeddings.astype(np.float64), rowvar=False))
    direct = tiny_embedder.embed_images([small_dataset / f for f in first.files])
    assert np.allclose(first.embeddings, direct, atol=1e-6)
    stored = np.load(cache / "embeddings.npy", allow_pickle=False)
    assert np.array_equal(stored, first.embeddings)

    second = embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1)
    assert second.cache_hit and second.key == first.key
    assert np.array_equal(second.embeddings, first.embeddings)
    assert np.array_equal(second.sigma, first.sigma) and second.files == first.files


def test_changed_dataset_or_model_is_re_embedded(
    tmp_path: Path, small_dataset: Path, tiny_embedder: ClipEmbedder
) -> None:
    cache = tmp_path / "cache"
    first = embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1)
    other_model = embed_dataset(tiny_clip(seed=1), small_dataset, cache, min_pairs=1)
    assert not other_model.cache_hit and not np.allclose(other_model.mean, first.mean)

    extra = make_synthetic_dataset(tmp_path / "extra", "noise", 1, seed=9, size=32)
    shutil.copyfile(extra / "img_00000.png", small_dataset / "new.png")
    with (small_dataset / METADATA_FILE).open("a") as handle:
        handle.write(json.dumps({"file_name": "new.png", "text": "noise"}) + "\n")
    grown = embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1)
    assert not grown.cache_hit and len(grown.files) == 13 and "new.png" in grown.files
    assert embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1).cache_hit


def test_bad_files_are_not_embedded(
    tmp_path: Path, small_dataset: Path, tiny_embedder: ClipEmbedder
) -> None:
    (small_dataset / "broken.png").write_bytes(b"nope")
    with (small_dataset / METADATA_FILE).open("a") as handle:
        handle.write(json.dumps({"file_name": "broken.png", "text": "broken"}) + "\n")
    result = embed_dataset(tiny_embedder, small_dataset, tmp_path / "c", min_pairs=1)
    assert "broken.png" not in result.files and len(result.files) == 12
    assert (small_dataset / "broken.png").read_bytes() == b"nope"


def test_damaged_cache_is_rebuilt_not_trusted(
    tmp_path: Path, small_dataset: Path, tiny_embedder: ClipEmbedder
) -> None:
    cache = tmp_path / "cache"
    first = embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1)
    (cache / "embeddings.npy").write_bytes(b"not an npy file")
    again = embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1)
    assert not again.cache_hit and np.allclose(again.embeddings, first.embeddings)
    assert embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1).cache_hit
    leftovers = [p.name for p in cache.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "no staging or old folders left behind"


def test_dataset_fid_is_zero_for_the_same_dataset_and_symmetric(
    tmp_path: Path, small_dataset: Path, tiny_embedder: ClipEmbedder
) -> None:
    other = make_synthetic_dataset(tmp_path / "glyphs", "glyphs", 12, seed=0, size=32)
    a = embed_dataset(tiny_embedder, small_dataset, tmp_path / "ea", min_pairs=1)
    b = embed_dataset(tiny_embedder, other, tmp_path / "eb", min_pairs=1)
    assert dataset_fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert dataset_fid(a, b) > 0
    assert dataset_fid(a, b) == pytest.approx(dataset_fid(b, a), rel=1e-4)


def test_bf16_on_gpu_matches_fp32_on_cpu(tmp_path: Path, small_dataset: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU for the bf16 path")
    checkpoint = _save_tiny_checkpoint(tiny_clip(seed=3).model, tmp_path / "t.safetensors")
    gpu = load_clip(TINY_CLIP_NAME, checkpoint, device="cuda")
    cpu = load_clip(TINY_CLIP_NAME, checkpoint, device="cpu")
    assert gpu.dtype == torch.bfloat16 and cpu.dtype == torch.float32
    images = _images(small_dataset)
    on_gpu, on_cpu = gpu.embed_images(images), cpu.embed_images(images)
    assert np.allclose(np.linalg.norm(on_gpu, axis=1), 1.0, atol=1e-5)
    cosine = (on_gpu * on_cpu).sum(axis=1)
    assert cosine.min() > 0.99


def test_user_folder_or_dataset_as_cache_dir_is_refused_and_kept(
    small_dataset: Path, tiny_embedder: ClipEmbedder, snapshot, foreign_folder: Path
) -> None:
    for folder in (foreign_folder, small_dataset):
        before = snapshot(folder)
        with pytest.raises(ValueError, match=str(folder)):
            embed_dataset(tiny_embedder, small_dataset, folder, min_pairs=1)
        assert snapshot(folder) == before


def test_a_note_beside_a_cache_is_not_deleted_on_rebuild(
    tmp_path: Path, small_dataset: Path, tiny_embedder: ClipEmbedder
) -> None:
    cache = tmp_path / "cache"
    embed_dataset(tiny_embedder, small_dataset, cache, min_pairs=1)
    (cache / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        embed_dataset(tiny_clip(seed=1), small_dataset, cache, min_pairs=1)
    assert (cache / "notes.txt").read_text() == "mine"


def test_truncated_image_error_names_the_file(
    small_dataset: Path, tiny_embedder: ClipEmbedder
) -> None:
    image = _images(small_dataset)[0]
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    with pytest.raises(OSError, match=rf"{image}: cannot read image"):
        tiny_embedder.embed_images(_images(small_dataset))
