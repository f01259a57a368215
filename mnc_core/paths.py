"""The one path layout under the data root.

Large artifacts (datasets, model pipelines, caches, LoRA checkpoints, samples,
embeddings) live on the filesystem under a single root; every stage asks this
module where things go, so the layout is defined once.

    <root>/models/<model>/                      diffusers pipeline directory
    <root>/datasets/<dataset>/                  imagefolder (images + metadata.jsonl)
    <root>/embeddings/<clip>/<dataset>/         CLIP image embeddings + Gaussian stats
    <root>/cache/<model>/<dataset>/             cached latents and text embeddings
    <root>/lora/<model>/<dataset>/              LoRA checkpoints (safetensors)
    <root>/samples/<model>/<dataset>/<variant>/ generated PNGs (variant: lora | base)
    <root>/landing/<dataset>/                   where new dataset folders arrive (platform)
    <root>/knowledge/<name>/                    assembled knowledge-base folders (engine format)
    <root>/model-costs/                         cached parameter and FLOP counts per config
    <root>/engine/                              matching graph, Node2Vec+ vectors, ranker
    <root>/engine/near_best_calibration.json    the near-best calibration (plain JSON)
    <root>/warehouse/mnc.duckdb                 the DuckDB warehouse (tables)
    <root>/dagster_home/                        the local Dagster instance (DAGSTER_HOME)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnc_core.ids import check_slug

SAMPLE_VARIANTS = ("lora", "base")
# A dataset folder (Hugging Face imagefolder): captions in this file, images by suffix.
# Here rather than in t2i.datasets (which imports torch) so that the landing sensor's
# checks read the same names without importing torch.
METADATA_FILE = "metadata.jsonl"
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class DataLayout:
    """Paths of every artifact under `root`; ids are checked to be slugs.

    `models_root` / `datasets_root` move the pipeline and dataset folders elsewhere
    (a shared model store, say); by default they are `<root>/models` and `<root>/datasets`.
    """

    root: Path
    models_root: Path | None = None
    datasets_root: Path | None = None

    def model_dir(self, model: str) -> Path:
        base = self.models_root or Path(self.root) / "models"
        return Path(base) / check_slug(model, "model id")

    def dataset_dir(self, dataset: str) -> Path:
        base = self.datasets_root or Path(self.root) / "datasets"
        return Path(base) / check_slug(dataset, "dataset id")

    def embeddings_dir(self, clip_name: str, dataset: str) -> Path:
        return (
            Path(self.root)
            / "embeddings"
            / check_slug(clip_name, "clip name")
            / check_slug(dataset, "dataset id")
        )

    def cache_dir(self, model: str, dataset: str) -> Path:
        return self._pair("cache", model, dataset)

    def lora_dir(self, model: str, dataset: str) -> Path:
        return self._pair("lora", model, dataset)

    def samples_dir(self, model: str, dataset: str, variant: str) -> Path:
        if variant not in SAMPLE_VARIANTS:
            raise ValueError(f"sample variant {variant!r} is not one of {SAMPLE_VARIANTS}")
        return self._pair("samples", model, dataset) / variant

    def landing_dir(self, dataset: str) -> Path:
        return Path(self.root) / "landing" / check_slug(dataset, "dataset id")

    def knowledge_dir(self, name: str) -> Path:
        return Path(self.root) / "knowledge" / check_slug(name, "knowledge name")

    def model_costs_dir(self) -> Path:
        return Path(self.root) / "model-costs"

    def engine_dir(self) -> Path:
        return Path(self.root) / "engine"

    def calibration_path(self) -> Path:
        """The stored near-best calibration that every recommendation reads (JSON)."""
        return self.engine_dir() / "near_best_calibration.json"

    def warehouse_path(self) -> Path:
        return Path(self.root) / "warehouse" / "mnc.duckdb"

    def dagster_home(self) -> Path:
        return Path(self.root) / "dagster_home"

    def _pair(self, kind: str, model: str, dataset: str) -> Path:
        return (
            Path(self.root)
            / kind
            / check_slug(model, "model id")
            / check_slug(dataset, "dataset id")
        )
