"""Where things are on disk: the model store, the dataset store and the artifact root.

The model store holds local diffusers pipeline folders (loaded offline only); the
dataset store has a landing folder, where new image-caption folders arrive, and an
accepted folder, where the platform keeps the validated copy every later stage reads.
The artifact root holds everything derived (`mnc_core.paths.DataLayout`).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mnc_core.ids import check_slug
from mnc_core.paths import DataLayout


class ModelStore(dg.ConfigurableResource):
    """Root folder of the zoo's local pipeline directories, one folder per model id."""

    root: str

    def pipeline_dir(self, model: str) -> Path:
        return Path(self.root) / check_slug(model, "model id")


class DatasetStore(dg.ConfigurableResource):
    """Landing folder (new datasets arrive) and accepted folder (validated copies)."""

    landing: str
    accepted: str

    def landing_dir(self, dataset: str) -> Path:
        return Path(self.landing) / check_slug(dataset, "dataset id")

    def accepted_dir(self, dataset: str) -> Path:
        return Path(self.accepted) / check_slug(dataset, "dataset id")


class ArtifactStore(dg.ConfigurableResource):
    """The artifact root and its layout (`DataLayout`), with the two stores in it."""

    root: str
    model_store: ModelStore
    dataset_store: DatasetStore

    @property
    def layout(self) -> DataLayout:
        return DataLayout(
            Path(self.root),
            models_root=Path(self.model_store.root),
            datasets_root=Path(self.dataset_store.accepted),
        )
