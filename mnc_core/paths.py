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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnc_core.ids import check_slug

SAMPLE_VARIANTS = ("lora", "base")


@dataclass(frozen=True)
class DataLayout:
    """Paths of every artifact under `root`; ids are checked to be slugs."""

    root: Path

    def model_dir(self, model: str) -> Path:
        return Path(self.root) / "models" / check_slug(model, "model id")

    def dataset_dir(self, dataset: str) -> Path:
        return Path(self.root) / "datasets" / check_slug(dataset, "dataset id")

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

    def _pair(self, kind: str, model: str, dataset: str) -> Path:
        return (
            Path(self.root)
            / kind
            / check_slug(model, "model id")
            / check_slug(dataset, "dataset id")
        )
