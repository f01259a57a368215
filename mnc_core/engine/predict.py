"""Predicting model ranks for datasets treated as new (paper section 4.5).

A *fold* is one prediction problem: a target dataset and the model-dataset edges
known in that world. The target's own model edges are dropped before anything is
built: its graph holds only its dataset-dataset edges, and the ranker trains on the
other datasets. Many folds are embedded in one Node2Vec+ run (see `embedding`), then
one ranker per fold and input variant is fitted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from mnc_core.engine.embedding import Node2VecSettings, embed_graphs
from mnc_core.engine.graph import build_matching_graph
from mnc_core.engine.inputs import (
    BOTH,
    FoldContext,
    InputGroups,
    class_count,
    group_columns,
    pair_inputs,
    training_set,
    union_groups,
)
from mnc_core.engine.rankers import (
    DEFAULT_RANKER,
    CatBoostSettings,
    Ranker,
    RankPrediction,
    make_ranker,
)
from mnc_core.kb.schema import KnowledgeBase
from mnc_core.workers import run_unordered

log = logging.getLogger(__name__)

# Starting a worker process costs ~2 s (imports); a fit ~0.3-1 s.
MIN_FITS_FOR_PROCESSES = 24


@dataclass(frozen=True)
class EngineSettings:
    """Everything that shapes a prediction, fixed once for all datasets."""

    ranker: str = DEFAULT_RANKER
    node2vec: Node2VecSettings = field(default_factory=Node2VecSettings)
    catboost: CatBoostSettings = field(default_factory=CatBoostSettings)
    # Feed the target's scores before fine-tuning (KB column `score_before`, e.g. the
    # base model's CLIP-FID, or LogME) to the ranker. Off by default: the paper's M&C
    # does not use them, and a brand-new dataset has none unless they were measured.
    use_score_before: bool = False


@dataclass(frozen=True)
class Fold:
    """Predict `target` from `known_edges` minus the target's own rows."""

    key: str
    target: str
    known_edges: pd.DataFrame

    def training_edges(self) -> pd.DataFrame:
        return self.known_edges[self.known_edges["dataset"] != self.target]

    def target_edges(self) -> pd.DataFrame:
        return self.known_edges[self.known_edges["dataset"] == self.target]

    def has_training_scores(self) -> bool:
        """Whether any other dataset has a known score: without one, nothing to learn."""
        return bool(self.training_edges()["score"].notna().any())


def fold_graph(kb: KnowledgeBase, fold: Fold):
    """The fold's matching graph: training model edges and every dataset-dataset edge."""
    return build_matching_graph(
        kb.models, kb.datasets, fold.training_edges(), kb.dataset_distances, kb.higher_is_better
    )


def split_distinct_columns(features: pd.DataFrame) -> pd.DataFrame:
    """Keep one column per distinct ordering of the rows (first seen wins).

    A tree ranker can only split a column at a threshold, so two columns that order
    the rows the same way (or exactly reversed) offer the same splits: dropping the
    copies loses nothing and makes CatBoost much faster on config-derived model
    features (the ten zoo models: 199 columns, 51 distinct orderings).
    """
    seen: set[tuple[int, ...]] = set()
    keep = []
    for column in features.columns:
        up = tuple(features[column].rank(method="dense").astype(int))
        down = tuple(features[column].rank(method="dense", ascending=False).astype(int))
        signature = min(up, down)
        if signature not in seen:
            seen.add(signature)
            keep.append(column)
    return features[keep]


def fold_train_scores(kb: KnowledgeBase, fold: Fold) -> pd.DataFrame:
    """The fold's known scores as training dataset x model (the target's row absent)."""
    scores = fold.training_edges().pivot(index="dataset", columns="model", values="score")
    scores = scores.reindex(columns=kb.models)
    return scores.loc[[d for d in kb.datasets if d in scores.index]]


def fold_aux_scores(
    aux_matrices: Mapping[str, pd.DataFrame], fold: Fold
) -> dict[str, pd.DataFrame]:
    """The fold's auxiliary scores per recipe, without any row of the target dataset.

    `aux_matrices`: `kb.aux_score_matrices()`. The target's results under another
    recipe are measurements on the target: a new dataset has none, so the fold must
    not see them.
    """
    return {
        recipe: scores.drop(index=fold.target, errors="ignore")
        for recipe, scores in aux_matrices.items()
    }


def fold_context(
    kb: KnowledgeBase,
    fold: Fold,
    vectors: pd.DataFrame | None,
    use_score_before: bool = False,
    model_features: pd.DataFrame | None = None,
    aux_matrices: Mapping[str, pd.DataFrame] | None = None,
) -> FoldContext:
    """What the fold's ranker may see (scores before fine-tuning only if asked).

    `model_features`: `split_distinct_columns(kb.model_features)` and `aux_matrices`:
    `kb.aux_score_matrices()`, when a caller building many folds has them already;
    computed here otherwise.
    """
    if model_features is None:
        model_features = split_distinct_columns(kb.model_features)
    if aux_matrices is None:
        aux_matrices = kb.aux_score_matrices()
    return FoldContext(
        models=kb.models,
        model_features=model_features,
        dataset_features=kb.dataset_features,
        train_scores=fold_train_scores(kb, fold),
        distances=kb.dataset_distances,
        higher_is_better=kb.higher_is_better,
        node_vectors=vectors,
        before_scores=(
            fold.known_edges.pivot(index="dataset", columns="model", values="score_before")
            if use_score_before
            else None
        ),
        aux_scores=fold_aux_scores(aux_matrices, fold),
    )


def predict_folds(
    kb: KnowledgeBase,
    folds: Sequence[Fold],
    settings: EngineSettings | None = None,
    seed: int = 0,
    variants: Mapping[str, InputGroups] | None = None,
    workers: int | None = None,
) -> dict[str, dict[str, RankPrediction]]:
    """Predictions `{variant: {fold key: RankPrediction}}` for every fold and input variant.

    All folds share one Node2Vec+ run; the ranker fits, independent of each other,
    are spread over `workers` processes (default: every core once there are at least
    `MIN_FITS_FOR_PROCESSES` fits). Each fit is seeded on its own, so the predictions
    do not depend on `workers`.
    """
    settings = settings or EngineSettings()
    variants = dict(variants or {"mnc": BOTH})
    vectors: dict[str, pd.DataFrame] = {}
    started = time.perf_counter()
    if any(groups.graph for groups in variants.values()):
        graphs = {fold.key: fold_graph(kb, fold) for fold in folds}
        vectors = embed_graphs(graphs, settings.node2vec, seed)
    model_features = split_distinct_columns(kb.model_features)  # same for every fold
    aux_matrices = kb.aux_score_matrices()  # likewise; each fold drops its target's rows
    jobs = [
        (
            fold.key,
            fold_context(
                kb,
                fold,
                vectors.get(fold.key),
                settings.use_score_before,
                model_features,
                aux_matrices,
            ),
            fold.target,
        )
        for fold in folds
    ]
    out: dict[str, dict[str, RankPrediction]] = {name: {} for name in variants}
    every = max(8, len(folds) // 20)
    for done, (key, predictions) in enumerate(
        _fit_all(jobs, variants, settings, seed, workers), start=1
    ):
        for name, prediction in predictions.items():
            out[name][key] = prediction
        if done % every == 0 or done == len(folds):
            log.info(
                "ranker fits: %d/%d folds done (%.1f s)",
                done,
                len(folds),
                time.perf_counter() - started,
            )
    return out


def _fit_all(jobs, variants, settings, seed, workers):
    """Yield `(fold key, {variant: prediction})` as fits finish, in processes if worth it."""
    if workers is None:  # auto: processes only when the fits outweigh starting them
        enough = len(jobs) * len(variants) >= MIN_FITS_FOR_PROCESSES
        workers = (os.cpu_count() or 1) if enough else 1
    workers = min(workers, len(jobs))
    if workers <= 1:
        for key, context, target in jobs:
            yield key, _fit_fold(context, target, variants, settings, seed)
        return
    # The one worker pool: an interrupt or error stops every worker at once.
    fits = [(context, target, variants, settings, seed) for _, context, target in jobs]
    for index, predictions in run_unordered(_fit_fold, fits, workers):
        yield jobs[index][0], predictions


def _fit_fold(context, target, variants, settings, seed) -> dict[str, RankPrediction]:
    """Every input variant's prediction for one fold (runs in a worker process).

    The training set and the target's rows are built once, for the union of the
    variants' groups; each variant fits on its column slice (`group_columns`): the
    same inputs as building them per variant, at a third of the cost for `mnc evaluate`.
    """
    n_classes = class_count(context.train_scores)
    everything = union_groups(variants.values())
    inputs, targets = training_set(context, everything, n_classes)
    query = pair_inputs(context, target, everything)
    out = {}
    for name, groups in variants.items():
        columns = pd.Index(group_columns(inputs.columns, groups))
        ranker = _fitted(inputs[columns], targets, n_classes, settings, seed)
        out[name] = ranker.predict(query[columns])
    return out


def fit_and_predict(
    context: FoldContext,
    target: str,
    groups: InputGroups,
    settings: EngineSettings,
    seed: int,
) -> RankPrediction:
    """Fit the chosen ranker on the fold's training pairs and rank every model for `target`."""
    ranker, columns = fit_ranker(context, groups, settings, seed)
    return ranker.predict(pair_inputs(context, target, groups)[columns])


def fit_ranker(
    context: FoldContext, groups: InputGroups, settings: EngineSettings, seed: int
) -> tuple[Ranker, pd.Index]:
    """The chosen ranker fitted on the fold's training pairs, and its input columns."""
    n_classes = class_count(context.train_scores)
    inputs, targets = training_set(context, groups, n_classes)
    return _fitted(inputs, targets, n_classes, settings, seed), inputs.columns


def _fitted(inputs, targets, n_classes, settings, seed) -> Ranker:
    ranker = make_ranker(settings.ranker, settings.catboost, seed)
    ranker.fit(inputs, targets, n_classes)
    return ranker


def all_edges_fold(kb: KnowledgeBase) -> Fold:
    """The fold that trains on every known edge (no dataset held out): the full ranker's."""
    return Fold(key="all", target="", known_edges=kb.edges)


def rank_new_dataset(
    kb: KnowledgeBase,
    dataset: str,
    settings: EngineSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Every model's predicted rank for `dataset`, treated as new.

    Its known model edges (if any) are not used; they come back in the `known_score`
    column for comparison. Columns: rank, goodness, confidence, known_score; sorted
    best first.
    """
    if dataset not in kb.datasets:
        raise KeyError(f"dataset {dataset!r} is not in the knowledge base")
    settings = settings or EngineSettings()
    # One fold: let CatBoost use every core (leave-one-out keeps one thread per fit).
    catboost = replace(settings.catboost, thread_count=os.cpu_count() or 1)
    fold = Fold(key="rank", target=dataset, known_edges=kb.edges)
    if not fold.has_training_scores():
        raise ValueError(
            f"cannot rank models for {dataset!r}: no other dataset of the knowledge base "
            "has a known score to learn from"
        )
    prediction = predict_folds(
        kb, [fold], replace(settings, catboost=catboost), seed, workers=1
    )
    prediction = prediction["mnc"]["rank"]
    if prediction.table["goodness"].nunique() <= 1:
        raise ValueError(
            f"cannot rank models for {dataset!r}: the other datasets' known scores leave "
            "nothing to learn (every model ties); the knowledge base needs more scores"
        )
    known = fold.target_edges().set_index("model")["score"]
    table = prediction.table.copy()
    table["known_score"] = known.reindex(table.index)
    return table.sort_values("rank")


def engine_settings(
    ranker: str = DEFAULT_RANKER,
    walks: int | None = None,
    iterations: int | None = None,
    use_score_before: bool = False,
) -> EngineSettings:
    """Settings from the knobs users set (`mnc` flags, the platform's engine resource).

    `walks` (Node2Vec+ walks per node) and `iterations` (CatBoost) default to the paper's.
    """
    from mnc_core.engine.rankers import check_ranker_name

    check_ranker_name(ranker)
    settings = EngineSettings(ranker=ranker, use_score_before=use_score_before)
    if walks is not None:
        settings = replace(settings, node2vec=replace(settings.node2vec, num_walks=walks))
    if iterations is not None:
        settings = replace(settings, catboost=replace(settings.catboost, iterations=iterations))
    return settings
