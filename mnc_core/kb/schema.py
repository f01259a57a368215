"""What the team already knows, in memory: the `KnowledgeBase` value.

The on-disk format (one folder of CSV files plus `kb.json`) and its validation live
in `mnc_core.kb.store`; this module only says what the loaded value holds, so the
engine can depend on it without knowing about files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

EDGE_COLUMNS = ("model", "dataset", "score", "score_before", "cost")
AUX_EDGE_COLUMNS = ("model", "dataset", "recipe", "score")
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
    - `aux_edges`: auxiliary results, columns `AUX_EDGE_COLUMNS`: the same models
      on the same datasets fine-tuned with another *recipe* (e.g. `lora` when
      `edges` hold full fine-tuning), same metric and direction, one row per
      (model, dataset, recipe). The engine learns from them as extra training
      tasks but never predicts them; empty when there are none.
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
    aux_edges: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(AUX_EDGE_COLUMNS))
    )

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

    @property
    def recipes(self) -> list[str]:
        """The auxiliary recipes, sorted (empty when the KB has no auxiliary results)."""
        return sorted(self.aux_edges["recipe"].unique())

    def aux_score_matrices(self) -> dict[str, pd.DataFrame]:
        """Per auxiliary recipe: its scores as a dataset x model table (NaN = unknown)."""
        return {
            recipe: rows.pivot(index="dataset", columns="model", values="score").reindex(
                index=[d for d in self.datasets if d in set(rows["dataset"])],
                columns=self.models,
            )
            for recipe, rows in self.aux_edges.groupby("recipe", sort=True)
        }
