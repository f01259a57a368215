"""The platform materialised once per session on a tiny world, through the real definitions.

Three tiny pipelines (SD 1.5, SDXL, PixArt: three families) and four generated
datasets; every asset materialised with Dagster's `materialize` on an
`instance_for_test`, per-pair partitions included. Tests read what it left (the
warehouse, the files, the instance's events) and re-materialise single partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

import definitions
from mnc_assets.partitions import add_datasets, add_models, pair_key
from mnc_core.t2i.tiny_world import build_tiny_zoo, make_tiny_datasets

MODEL_STAGE = ("model_pipeline", "model_feature_row")
DATASET_STAGE = ("dataset_manifest", "dataset_embedding", "dataset_distance_row")
PAIR_STAGE = ("lora_checkpoint", "pair_samples", "fid_edge")
KNOWLEDGE_STAGE = ("imported_knowledge", "fid_edges", "knowledge_base", "matching_graph",
                   "node2vec_embeddings", "ranker")


def tiny_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a platform on `root` with the tiny fine-tuning profile."""
    return {"MNC_DATA_ROOT": str(root), "MNC_PROFILE": "tiny", **extra}


@dataclass
class Platform:
    """A materialised tiny platform: its root, definitions, instance and ids."""

    root: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    models: list[str]
    datasets: list[str]

    def materialize(self, keys: Sequence[str], partition: str | None = None,
                    raise_on_error: bool = True) -> dg.ExecuteInJobResult:
        """Materialise the named assets (and their checks) of the real definitions."""
        wanted = {dg.AssetKey(k) for k in keys}
        assets = [a for a in self.defs.assets if wanted & set(a.keys)]
        checks = [c for c in self.defs.asset_checks or []
                  if any(k.asset_key in wanted for k in c.check_keys)]
        return dg.materialize([*assets, *checks], instance=self.instance,
                              resources=self.defs.resources, partition_key=partition,
                              raise_on_error=raise_on_error)

    @property
    def warehouse(self):
        return self.defs.resources["warehouse"]

    @property
    def layout(self):
        return self.defs.resources["artifacts"].layout


def one_pair_world(root: Path) -> tuple[str, dg.Definitions]:
    """One tiny PixArt pipeline and one 10-image dataset, `shapes-a`, under `root`, and
    the definitions on them: the smallest world a (model, dataset) pair runs in."""
    from mnc_core.t2i.synthetic_data import make_synthetic_dataset

    (model,) = build_tiny_zoo(root / "models", ["pixart"])
    make_synthetic_dataset(root / "datasets" / "shapes-a", "shapes", n_images=10, seed=0,
                           size=32)
    return model, definitions.build_defs(tiny_env(root))


def materialize_world(platform: Platform) -> None:
    """Every stage in data-flow order (the order a team, or the demo, would run them)."""
    for model in platform.models:
        platform.materialize(MODEL_STAGE, model)
    for dataset in platform.datasets:
        platform.materialize(DATASET_STAGE, dataset)
    for model in platform.models:
        for dataset in platform.datasets:
            platform.materialize(PAIR_STAGE, pair_key(model, dataset))
    platform.materialize(KNOWLEDGE_STAGE)
    platform.materialize(["near_best_calibration"])
    platform.materialize(["recommendation"], platform.datasets[0])
    platform.materialize(["leave_one_out_evaluation"])


@pytest.fixture(scope="session")
def tiny_platform(tmp_path_factory) -> Platform:
    root = tmp_path_factory.mktemp("platform")
    defs = definitions.build_defs(tiny_env(root))
    models = build_tiny_zoo(root / "models")
    datasets = make_tiny_datasets(root / "datasets")
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster_home"))) as instance:
        add_models(instance, models)
        add_datasets(instance, datasets)
        platform = Platform(root, defs, instance, models, datasets)
        materialize_world(platform)
        yield platform
