"""Ranker inputs and targets per (model, dataset) pair (paper section 4.4).

One row per pair: `[model group | dataset group | graph group]`, each group
switchable (paper Table 4: features only, graph only, both):

- model group: the KB's model features plus the model's *training* record, its mean
  normalised rank over the fold's training datasets (what the model has done on
  the other datasets; never the target's edges), and the same record per auxiliary
  recipe of the KB (`model:overall_rank@lora`: its mean rank among the LoRA runs of
  the training datasets); and, when the fold is given scores
  *before* fine-tuning (`FoldContext.before_scores`, e.g. LogME imported as
  `score_before`), the model's normalised rank by that score on the dataset
  (`model:before_rank`, NaN where unknown): it is measured on the target before any
  fine-tuning, so it is known for a new dataset;
- dataset group: the KB's dataset features;
- graph group: the edge representation, Hadamard product of the model's and the
  dataset's Node2Vec+ vectors (element-wise: one column per embedding dimension,
  symmetric, and zero when the dataset is isolated), plus the neighbour ranks read
  off the graph's dataset-dataset edges: the model's normalised rank averaged over
  the target's `NEIGHBOURS` nearest training datasets (weighted by similarity), and
  its rank on each of the `NEAREST_RANKS` nearest with that neighbour's similarity.

Auxiliary results (`KnowledgeBase.aux_edges`: the same models fine-tuned on the
same datasets with another recipe) are extra training *tasks*: each training
(dataset, recipe) pair adds its models' rows, flagged by a `task:{recipe}` indicator
column (0 on the KB's own recipe, and always 0 for the target). With few training
datasets (9 per fold on TransferGraph) this doubles what the ranker sees of how
model ranks move between datasets. The target's auxiliary results are never used.

Targets: the model's rank on the dataset, normalised to [0, 1] (0 = best) among the
models known on that dataset, and bucketed into `n_classes` rank classes
`round(norm_rank * (n_classes - 1))`; `n_classes = min(most models on one dataset,
MAX_RANK_CLASSES)`. With 10 models known everywhere, class k is exactly rank k + 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from mnc_core.engine.graph import distance_similarity, node_name
from mnc_core.engine.metrics import UNKNOWN_RANK, mean_normalised_rank, normalised_ranks

MAX_RANK_CLASSES = 10
NEIGHBOURS = 5
NEAREST_RANKS = 3


@dataclass(frozen=True)
class InputGroups:
    """Which input groups the ranker sees."""

    model: bool = True
    dataset: bool = True
    graph: bool = True

    def __post_init__(self) -> None:
        if not (self.model or self.dataset or self.graph):
            raise ValueError("at least one input group must be on")


BOTH = InputGroups()
FEATURES_ONLY = InputGroups(graph=False)
GRAPH_ONLY = InputGroups(model=False, dataset=False)

# Column name prefixes of each group in `pair_inputs` tables; task indicators belong
# to every group (they say which recipe a row describes).
TASK_PREFIX = "task:"
MODEL_PREFIX = "model:"
DATASET_PREFIX = "dataset:"
EDGE_PREFIX = "edge:"
GRAPH_PREFIX = "graph:"


def union_groups(groups: Iterable[InputGroups]) -> InputGroups:
    """The groups any of `groups` sees: one table built for it serves them all."""
    groups = list(groups)
    return InputGroups(
        model=any(g.model for g in groups),
        dataset=any(g.dataset for g in groups),
        graph=any(g.graph for g in groups),
    )


def group_columns(columns: Sequence[str], groups: InputGroups) -> list[str]:
    """The columns of `groups`, in order, from a table built for a superset of them.

    Why: the ablation variants' inputs are column slices of the full table (each
    group's columns do not depend on which other groups are on), so a fold builds
    its training set once instead of once per variant; a test checks the slices
    equal per-variant builds.
    """
    prefixes = [TASK_PREFIX]
    prefixes += [MODEL_PREFIX] if groups.model else []
    prefixes += [DATASET_PREFIX] if groups.dataset else []
    prefixes += [EDGE_PREFIX, GRAPH_PREFIX] if groups.graph else []
    return [c for c in columns if c.startswith(tuple(prefixes))]


@dataclass(frozen=True)
class FoldContext:
    """What one fold knows: training edges, distances, node vectors (None = no graph)."""

    models: list[str]
    model_features: pd.DataFrame
    dataset_features: pd.DataFrame
    train_scores: pd.DataFrame  # training dataset x model, NaN = unknown
    distances: pd.DataFrame  # all dataset-dataset distances (known for new datasets too)
    higher_is_better: bool
    node_vectors: pd.DataFrame | None
    # dataset x model scores before fine-tuning, every dataset (the target included:
    # they are measured before fine-tuning); None or all-NaN = no such input
    before_scores: pd.DataFrame | None = None
    # per auxiliary recipe: training dataset x model scores (never the target's)
    aux_scores: Mapping[str, pd.DataFrame] = field(default_factory=dict)

    def has_before(self) -> bool:
        """Whether the `model:before_rank` input exists (the same for every row of a fold)."""
        return self.before_scores is not None and bool(self.before_scores.notna().any().any())

    def before_rank(self, dataset: str) -> pd.Series:
        """Normalised rank (0 = best) by the score before fine-tuning on `dataset`; NaN unknown."""
        before = self.before_scores
        if before is None or dataset not in before.index:
            return pd.Series(np.nan, index=pd.Index(self.models))
        ranks = normalised_ranks(before.loc[[dataset]], self.higher_is_better)
        return ranks.iloc[0].reindex(self.models)

    def train_ranks(self) -> pd.DataFrame:
        """Normalised ranks (0 = best) on the training datasets."""
        return normalised_ranks(self.train_scores, self.higher_is_better)

    def overall_rank(self, recipe: str | None = None) -> pd.Series:
        """Each model's mean normalised rank on the training datasets (0.5 if never seen).

        `recipe`: over that auxiliary recipe's results instead of the KB's own.
        """
        scores = self.train_scores if recipe is None else self.aux_scores[recipe]
        ranks = mean_normalised_rank(scores, self.higher_is_better)
        return ranks.reindex(self.models).fillna(UNKNOWN_RANK)

    @property
    def recipes(self) -> list[str]:
        """The auxiliary recipes this fold learns from, sorted."""
        return sorted(self.aux_scores)


def neighbour_ranks(context: FoldContext, dataset: str) -> pd.DataFrame:
    """Each model's rank on the target's nearest training datasets (index = model).

    Columns: `neighbour_rank` (similarity-weighted mean over the `NEIGHBOURS` nearest),
    `near{k}_rank` (rank on the k-th nearest, k = 1..NEAREST_RANKS) and
    `near{k}_similarity` (that dataset's similarity to the target, the same for every
    model: it lets the ranker judge how far to trust the neighbour). Unknown ranks
    fall back to the model's overall rank, missing neighbours to similarity 0.
    """
    overall = context.overall_rank()
    ranks = context.train_ranks()
    near = _nearest_training(context, dataset)
    out = pd.DataFrame(index=pd.Index(context.models))
    if near.empty:
        out["neighbour_rank"] = overall
    else:
        table = ranks.loc[near.index, context.models]
        total = table.notna().mul(near, axis=0).sum(axis=0)
        mean = table.fillna(0.0).mul(near, axis=0).sum(axis=0)
        out["neighbour_rank"] = (mean / total.where(total > 0, np.nan)).fillna(overall)
    for k in range(NEAREST_RANKS):
        if k < len(near):
            out[f"near{k + 1}_rank"] = ranks.loc[near.index[k], context.models].fillna(overall)
            out[f"near{k + 1}_similarity"] = float(near.iloc[k])
        else:
            out[f"near{k + 1}_rank"] = overall
            out[f"near{k + 1}_similarity"] = 0.0
    return out


def _nearest_training(context: FoldContext, dataset: str) -> pd.Series:
    """Similarity (exp map of the distance) of the target's nearest training datasets."""
    d = context.distances
    mine = d[(d["dataset_a"] == dataset) | (d["dataset_b"] == dataset)]
    other = mine["dataset_a"].where(mine["dataset_b"] == dataset, mine["dataset_b"])
    similarity = pd.Series(
        distance_similarity(d["distance"]).loc[mine.index].to_numpy(), index=other.to_numpy()
    )
    similarity = similarity[similarity.index.isin(context.train_scores.index)]
    similarity = similarity[similarity.index != dataset]
    return similarity.sort_values(ascending=False).iloc[:NEIGHBOURS]


def pair_inputs(
    context: FoldContext, dataset: str, groups: InputGroups, recipe: str | None = None
) -> pd.DataFrame:
    """Input rows (index = model) of every model of the zoo paired with `dataset`.

    `recipe`: the rows describe that auxiliary task (training only); None = the KB's
    own recipe, as for every prediction.
    """
    parts: list[pd.DataFrame] = []
    models = context.models
    if context.recipes:
        parts.append(
            pd.DataFrame(
                {f"{TASK_PREFIX}{r}": float(r == recipe) for r in context.recipes}, index=models
            )
        )
    if groups.model:
        features = context.model_features.loc[models].add_prefix(MODEL_PREFIX)
        features[f"{MODEL_PREFIX}overall_rank"] = context.overall_rank().loc[models].to_numpy()
        for r in context.recipes:
            features[f"{MODEL_PREFIX}overall_rank@{r}"] = (
                context.overall_rank(r).loc[models].to_numpy()
            )
        if context.has_before():
            features[f"{MODEL_PREFIX}before_rank"] = context.before_rank(dataset).to_numpy()
        parts.append(features)
    if groups.dataset:
        row = context.dataset_features.loc[[dataset]].add_prefix(DATASET_PREFIX)
        parts.append(pd.DataFrame(np.repeat(row.to_numpy(), len(models), axis=0),
                                  index=models, columns=row.columns))
    if groups.graph:
        parts.append(_graph_inputs(context, dataset))
    table = pd.concat([p.set_axis(models, axis=0) for p in parts], axis=1)
    return table.astype(float)


def _graph_inputs(context: FoldContext, dataset: str) -> pd.DataFrame:
    """Hadamard edge representation and neighbour rank of each model with `dataset`."""
    models = context.models
    columns: dict[str, np.ndarray] = {}
    if context.node_vectors is not None:
        vectors = context.node_vectors
        model_vectors = vectors.loc[[node_name("model", m) for m in models]].to_numpy()
        dataset_vector = vectors.loc[node_name("dataset", dataset)].to_numpy()
        product = model_vectors * dataset_vector[None, :]
        for k, name in enumerate(vectors.columns):
            columns[f"{EDGE_PREFIX}{name}"] = product[:, k]
    table = pd.DataFrame(columns, index=models)
    near = neighbour_ranks(context, dataset).loc[models].add_prefix(GRAPH_PREFIX)
    return pd.concat([table, near], axis=1)


def rank_classes(norm_ranks: pd.Series, n_classes: int) -> pd.Series:
    """Bucket normalised ranks (0 = best) into `n_classes` integer classes (0 = best)."""
    return (norm_ranks * (n_classes - 1)).round().astype(int)


def class_count(train_scores: pd.DataFrame) -> int:
    """Number of rank classes: the most models known on one dataset, capped."""
    most = int(train_scores.notna().sum(axis=1).max()) if len(train_scores) else 2
    return max(2, min(most, MAX_RANK_CLASSES))


def training_set(
    context: FoldContext, groups: InputGroups, n_classes: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Inputs (rows grouped by task, contiguous) and targets of every known training pair.

    A task is a training dataset under the KB's recipe, then under each auxiliary
    recipe. Targets columns: `dataset` (the group: the dataset id, `dataset@recipe`
    for auxiliary tasks), `norm_rank` (0 = best), `rank_class`. Each task is paired
    with its models as if its dataset were the target: none of that dataset's
    results (under any recipe) feed its rows' records, like at prediction time.
    """
    tasks = [(None, context.train_scores)]
    tasks += [(r, context.aux_scores[r]) for r in context.recipes]
    inputs, targets = [], []
    for recipe, scores in tasks:
        ranks = normalised_ranks(scores, context.higher_is_better)
        for dataset in scores.index:
            known = ranks.loc[dataset].dropna()
            if known.empty:
                continue
            seen_as_target = _without(context, dataset)
            rows = pair_inputs(seen_as_target, dataset, groups, recipe).loc[known.index]
            inputs.append(rows)
            targets.append(
                pd.DataFrame(
                    {
                        "dataset": dataset if recipe is None else f"{dataset}@{recipe}",
                        "norm_rank": known.to_numpy(),
                        "rank_class": rank_classes(known, n_classes).to_numpy(),
                    },
                    index=known.index,
                )
            )
    if not inputs:
        raise ValueError(
            "no training dataset has a known score: nothing to learn a ranking from"
        )
    return pd.concat(inputs), pd.concat(targets)


def _without(context: FoldContext, dataset: str) -> FoldContext:
    """The context seen from a training dataset: none of its results feed its records."""
    return replace(
        context,
        train_scores=context.train_scores.drop(index=dataset, errors="ignore"),
        aux_scores={
            r: scores.drop(index=dataset, errors="ignore")
            for r, scores in context.aux_scores.items()
        },
    )
