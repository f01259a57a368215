"""A tiny zoo and tiny datasets for the platform's demo and tests (CPU, random weights).

The same loading, training, sampling and scoring code runs on them as on real
pipelines; only the inputs are small and generated here, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mnc_core.t2i.synthetic_data import make_synthetic_dataset
from mnc_core.t2i.tiny_pipelines import build_tiny_pipeline

# at least three families: a UNet (SD 1.5), a UNet with two text encoders (SDXL), a DiT
TINY_FAMILIES = ("sd15", "sdxl", "pixart")
# (dataset id, synthetic family, seed)
TINY_DATASETS = (
    ("shapes-a", "shapes", 0),
    ("glyphs-a", "glyphs", 1),
    ("scenes-a", "scenes", 2),
    ("textures-a", "textures", 3),
)


def tiny_model_id(family: str) -> str:
    """The model id of a tiny pipeline: `tiny-<family>`."""
    return f"tiny-{family}"


def build_tiny_zoo(models_root: Path, families: Sequence[str] = TINY_FAMILIES) -> list[str]:
    """Tiny pipelines under `models_root/<model id>` (kept when already built); their ids."""
    ids = []
    for family in families:
        model = tiny_model_id(family)
        folder = Path(models_root) / model
        if not (folder / "model_index.json").is_file():
            build_tiny_pipeline(family, folder, seed=0)
        ids.append(model)
    return ids


def make_tiny_datasets(
    datasets_root: Path,
    specs: Sequence[tuple[str, str, int]] = TINY_DATASETS,
    n_images: int = 12,
    size: int = 32,
) -> list[str]:
    """Synthetic image-caption folders under `datasets_root/<id>` (kept when present); ids."""
    for dataset, family, seed in specs:
        folder = Path(datasets_root) / dataset
        if not (folder / "metadata.jsonl").is_file():
            make_synthetic_dataset(folder, family, n_images=n_images, seed=seed, size=size)
    return [dataset for dataset, _, _ in specs]
