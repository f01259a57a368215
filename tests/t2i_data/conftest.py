"""Shared fixtures of the data-side tests: a tiny random CLIP and small synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnc_core.t2i.clip_embed import ClipEmbedder, tiny_clip
from mnc_core.t2i.synthetic_data import make_synthetic_dataset


@pytest.fixture(scope="session")
def tiny_embedder() -> ClipEmbedder:
    return tiny_clip(seed=0)


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """Twelve 32 px images of the `shapes` family with captions."""
    return make_synthetic_dataset(tmp_path / "shapes", "shapes", n_images=12, seed=0, size=32)
