"""What the team already knows, in memory: the `KnowledgeBase` value.

The on-disk format (one folder of CSV files plus `kb.json`) and its validation live
in `mnc_core.kb.store`; this module only says what the loaded value holds, so the
engine can depend on it without knowing about files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

EDGE_COLUMNS = ("model", "dataset", "score", "score_before", "cost")
DISTANCE_COLUMNS = ("dataset_a", "dataset_b", "distance")
ID_MAP_COLUMNS = ("kind", "id", "original")


@dataclass(frozen=True)
class KnowledgeBase:
    """A validated knowledge base.

    - `edges`: one row per known (model, dataset) fine-tuning result, columns
      `EDGE_COLUMNS`; `score_before` (score before fine-tuning) and `cost`
      (e.g. GPU hours) may be NaN.
    - `metric`: name of the score (e.g. `clip_fid`, `eval_accuracy`).
    - `higher_is_better`: score direction (False for FID, True for accuracy).
    - `model_features`: index = model id, numeric columns only (already
      normalised / one-hot encoded); every model of the zoo has a row.
    - `dataset_features`: index = dataset id, numeric columns only; every
      dataset has a row, including datasets with no model edges yet.
    - `dataset_distances`: columns `DISTANCE_COLUMNS`, each unordered pair at
      most once, distance >= 0 and finite (e.g. FID between the two datasets).
    - `source`: where the results come from (a generator, a benchmark folder).
    - `id_map`: optional table `ID_MAP_COLUMNS` (kind `model` | `dataset`, slug
      id, original name) so users can map imported slugs back to their names.
    """

    edges: pd.DataFrame
    metric: str
    higher_is_better: bool
    model_features: pd.DataFrame
    dataset_features: pd.DataFrame
    dataset_distances: pd.DataFrame
    description: str = ""
    synthetic: bool = False
    extra: dict = field(default_factory=dict)
    source: str = ""
    id_map: pd.DataFrame | None = None

    @property
    def models(self) -> list[str]:
        """Every model id, in a stable order."""
        return list(self.model_features.index)

    @property
    def datasets(self) -> list[str]:
        """Every dataset id, in a stable order."""
        return list(self.dataset_features.index)

    def score_matrix(self) -> pd.DataFrame:
        """Scores as a dataset x model table (NaN where no result is known)."""
        return self.edges.pivot(index="dataset", columns="model", values="score").reindex(
            index=self.datasets, columns=self.models
        )
