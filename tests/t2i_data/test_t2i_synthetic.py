"""The synthetic dataset generator: valid imagefolders, seeded, families visually distinct."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnc_core.t2i.clip_embed import ClipEmbedder, dataset_fid, embed_dataset
from mnc_core.t2i.datasets import METADATA_FILE, load_imagefolder
from mnc_core.t2i.synthetic_data import COLOURS, SYNTHETIC_FAMILIES, make_synthetic_dataset


def _pixel_features(folder: Path) -> np.ndarray:
    """Per image: channel means and stds, mean absolute gradients, log colour count."""
    rows = []
    for path in sorted(folder.glob("*.png")):
        x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
        grad = [np.abs(np.diff(x, axis=1)).mean(), np.abs(np.diff(x, axis=0)).mean()]
        n_colours = len(np.unique(x.reshape(-1, 3), axis=0))
        rows.append(np.concatenate([x.mean(axis=(0, 1)), x.std(axis=(0, 1)), grad,
                                    [np.log(n_colours) / 5]]))
    return np.array(rows)


@pytest.mark.parametrize("family", SYNTHETIC_FAMILIES)
def test_each_family_writes_a_valid_imagefolder(tmp_path: Path, family: str) -> None:
    out = make_synthetic_dataset(tmp_path / family, family, n_images=10, seed=3, size=32)
    rows = [json.loads(line) for line in (out / METADATA_FILE).read_text().splitlines()]
    assert len(rows) == 10 and all(row["text"].strip() for row in rows)
    ds = load_imagefolder(out, min_pairs=10, min_side=32)
    assert ds.report.skipped == [] and ds.report.converted == []
    for row in rows:
        with Image.open(out / row["file_name"]) as image:
            assert image.size == (32, 32) and image.mode == "RGB"


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", "scenes", 6, seed=11, size=32)
    b = make_synthetic_dataset(tmp_path / "b", "scenes", 6, seed=11, size=32)
    c = make_synthetic_dataset(tmp_path / "c", "scenes", 6, seed=12, size=32)
    files = sorted(p.name for p in a.iterdir())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)


def test_captions_name_the_colours_that_are_drawn(tmp_path: Path) -> None:
    out = make_synthetic_dataset(tmp_path / "t", "textures", 12, seed=0, size=32)
    for line in (out / METADATA_FILE).read_text().splitlines():
        row = json.loads(line)
        words = row["text"].split()  # "a <kind> pattern in <colour> and <colour>"
        named = {COLOURS[words[-3]], COLOURS[words[-1]]}
        pixels = np.asarray(Image.open(out / row["file_name"]).convert("RGB"))
        drawn = set(map(tuple, pixels.reshape(-1, 3).tolist()))
        assert drawn == named, row


def test_families_are_recognisable_from_pixel_statistics(tmp_path: Path) -> None:
    """Nearest family centroid (fitted on seed 0) recognises the family of seed-1 images."""
    def features(family: str, seed: int) -> np.ndarray:
        folder = make_synthetic_dataset(tmp_path / f"{family}-{seed}", family, 24, seed, 32)
        return _pixel_features(folder)

    centroids = np.array([features(f, 0).mean(axis=0) for f in SYNTHETIC_FAMILIES])
    accuracies = []
    for index, family in enumerate(SYNTHETIC_FAMILIES):
        test = features(family, 1)
        predicted = np.argmin(((test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
        accuracies.append(float((predicted == index).mean()))
    chance = 1 / len(SYNTHETIC_FAMILIES)
    assert min(accuracies) > 2 * chance, dict(zip(SYNTHETIC_FAMILIES, accuracies, strict=True))
    assert np.mean(accuracies) > 0.75


def test_families_are_separated_by_tiny_clip_fid(
    tmp_path: Path, tiny_embedder: ClipEmbedder
) -> None:
    emb = {}
    for family in SYNTHETIC_FAMILIES:
        for seed in (0, 1):
            name = f"{family}-{seed}"
            folder = make_synthetic_dataset(tmp_path / name, family, 32, seed, 32)
            emb[family, seed] = embed_dataset(tiny_embedder, folder, tmp_path / "emb" / name)
    for family in SYNTHETIC_FAMILIES:
        within = dataset_fid(emb[family, 0], emb[family, 1])
        between = min(
            dataset_fid(emb[family, 0], emb[other, seed])
            for other in SYNTHETIC_FAMILIES if other != family for seed in (0, 1)
        )
        assert within < between, family


def test_existing_folder_is_not_overwritten_unless_asked(tmp_path: Path) -> None:
    out = make_synthetic_dataset(tmp_path / "d", "noise", 4, seed=0, size=16)
    before = (out / METADATA_FILE).read_text()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_synthetic_dataset(out, "shapes", 4, seed=0, size=16)
    assert (out / METADATA_FILE).read_text() == before
    make_synthetic_dataset(out, "shapes", 5, seed=0, size=16, overwrite=True)
    assert len((out / METADATA_FILE).read_text().splitlines()) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["d"], "no staging folder left behind"


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown synthetic family"):
        make_synthetic_dataset(tmp_path / "x", "portraits", 4, seed=0)
    with pytest.raises(ValueError, match="at least 1"):
        make_synthetic_dataset(tmp_path / "x", "shapes", 0, seed=0)
    assert not (tmp_path / "x").exists()


def test_generation_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    make_synthetic_dataset(tmp_path / "fast", "noise", n_images=64, seed=0, size=64)
    # the brief asks for well under a second; the bound leaves room for a loaded CI machine
    assert time.perf_counter() - start < 3.0
