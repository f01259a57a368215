"""Shared fixtures: one small synthetic dataset and tiny pipelines built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnc_core.paths import DataLayout
from mnc_core.t2i.datasets import ImageCaptionDataset, load_imagefolder
from mnc_core.t2i.synthetic_data import make_synthetic_dataset
from mnc_core.t2i.tiny_pipelines import build_tiny_pipeline

DATASET_ID = "shapes"


@pytest.fixture(scope="session")
def train_layout(tmp_path_factory) -> DataLayout:
    return DataLayout(tmp_path_factory.mktemp("t2i_train_root"))


@pytest.fixture(scope="session")
def tiny_dataset(train_layout: DataLayout) -> ImageCaptionDataset:
    folder = make_synthetic_dataset(
        train_layout.dataset_dir(DATASET_ID), "shapes", n_images=12, seed=0, size=32
    )
    return load_imagefolder(folder)


@pytest.fixture(scope="session")
def tiny_pipeline_dir(train_layout: DataLayout):
    """Factory: the tiny pipeline of a family, built once per session under models/<family>."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_pipeline(family, train_layout.model_dir(family))
        return built[family]

    return get
