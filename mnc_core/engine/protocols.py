"""Evaluation protocols (paper sections 5.2-5.4): leave-one-dataset-out and sparsity.

Leave-one-out: each target dataset in turn is treated as new; its model edges are
removed from its fold's graph and training set (a separate graph per fold), every
method ranks the zoo for it, and the metrics compare with its true scores.
Sparsity: for each level (share of model-dataset edges dropped at random) and seed,
leave-one-out runs on the remaining edges. A dataset left with fewer than
`MIN_EVAL_EDGES` known scores cannot be evaluated, and one whose fold keeps no other
dataset's scores has nothing to learn from: both are skipped (and counted).

The O2B reference ("overall best") is the model with the best mean rank over all
datasets of the full KB: a fixed yardstick of the evaluation, never a predictor input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mnc_core.engine import baselines
from mnc_core.engine.decisions import (
    decision_metrics,
    empty_decisions,
    kb_epsilon,
    mean_decisions,
    order_decisions,
    order_of,
    random_decision_metrics,
    summary_row,
    target_terms,
)
from mnc_core.engine.inputs import BOTH, FEATURES_ONLY, GRAPH_ONLY, InputGroups
from mnc_core.engine.metrics import (
    MetricRow,
    dataset_metrics,
    empty_metrics,
    mean_metrics,
    overall_best_model,
)
from mnc_core.engine.predict import EngineSettings, Fold, fold_train_scores, predict_folds
from mnc_core.kb.schema import KnowledgeBase

if TYPE_CHECKING:  # imported where used, as the sequential modules (scipy.stats)
    from mnc_core.engine.score_posterior import PriorParts

log = logging.getLogger(__name__)

MIN_EVAL_EDGES = 2
SPARSITY_LEVELS = tuple(round(0.1 * k, 1) for k in range(1, 10))
SPARSITY_SEEDS = 3
LOO_VARIANTS: dict[str, InputGroups] = {
    "mnc": BOTH,
    "mnc-features-only": FEATURES_ONLY,
    "mnc-graph-only": GRAPH_ONLY,
}
BASELINES = ("overall", "initial", "direct", "random")


def leave_one_out(
    kb: KnowledgeBase,
    settings: EngineSettings | None = None,
    seed: int = 0,
    targets: Sequence[str] | None = None,
    variants: Mapping[str, InputGroups] | None = None,
) -> dict:
    """Leave-one-dataset-out over `targets` (default: every dataset with enough scores)."""
    targets = _check_targets(kb, targets)
    folds, skipped = _folds(kb, kb.edges, targets, prefix="loo")
    per_fold = _evaluate(kb, folds, settings, seed, variants or LOO_VARIANTS)
    return {
        "methods": _summarise(per_fold, {f.key: f.target for f in folds}),
        "skipped": skipped,
    }


SEQUENTIAL_BUDGET = 5
SEQUENTIAL_METHODS = ("mnc", "overall", "random", "collaborative")


def sequential(
    kb: KnowledgeBase,
    settings: EngineSettings | None = None,
    seed: int = 0,
    targets: Sequence[str] | None = None,
    budget: int = SEQUENTIAL_BUDGET,
) -> dict:
    """Leave-one-out where each pick's true score is revealed before the next pick.

    Per fold: M&C's one-shot prediction (one Node2Vec+ run and one fit per fold, as in
    `leave_one_out`) is the prior of the sequential update (`engine.sequential`);
    `collaborative` is the same update without it; `overall` is Overall's static
    order; `random` the exact expectation over all orderings. Metrics per method:
    `regret_after_1` .. `regret_after_{budget}` (regret of the best of the first b
    picks) and `fine_tunings_to_near_best` (the simulation runs until every scored
    model is picked, so it is counted however late), with `hit@k` and
    `gpu_hours_to_near_best`.
    """
    from mnc_core.engine import sequential as seq

    if budget < 1:
        raise ValueError(f"--budget must be at least 1, got {budget}")
    targets = _check_targets(kb, targets)
    folds, skipped = _folds(kb, kb.edges, targets, prefix="seq")
    predictions = predict_folds(kb, folds, settings, seed, {"mnc": BOTH})["mnc"]
    ks = tuple(range(1, budget + 1))
    key = "regret_after_{k}"
    rows: dict[str, dict[str, MetricRow]] = {m: {} for m in SEQUENTIAL_METHODS}
    hib = kb.higher_is_better
    parts = {f.key: fold_prior_parts(kb, f, predictions[f.key].goodness) for f in folds}
    shares = prior_shares(kb, folds, parts)
    for fold in folds:
        truth = fold.target_edges().set_index("model")["score"]
        judge = _Judge(kb, fold, truth, "")
        train = fold_train_scores(kb, fold)
        orders = seq.sequential_fold_orders(
            train, truth, hib, lambda best: kb_epsilon(kb, best), parts[fold.key],
            prior_share=shares[fold.key])
        orders["overall"] = order_of(baselines.overall_goodness(train, hib))
        for name, order in orders.items():
            rows[name][fold.key] = order_decisions(
                order, truth, hib, judge.epsilon, judge.costs, ks, key
            )
        rows["random"][fold.key] = random_decision_metrics(
            truth, hib, judge.epsilon, judge.costs, ks, key
        )
    target_of = {f.key: f.target for f in folds}
    methods = _summarise(rows, target_of, selection=False)
    return {"methods": methods, "skipped": skipped, "budget": budget,
            "prior_share": {target_of[key]: share for key, share in shares.items()}}


def prior_shares(kb: KnowledgeBase, folds: Sequence[Fold],
                 parts: Mapping[str, PriorParts]) -> dict[str, float]:
    """fold key -> M&C's share of the sequential prior mean, fitted on the other folds'
    datasets (`score_posterior.fit_prior_share`; `parts`: fold key -> the fold's
    `fold_prior_parts`): a fold never sees its own target."""
    from mnc_core.engine.score_posterior import fit_prior_share

    terms = {fold.key: fold_share_terms(kb, fold, parts[fold.key]) for fold in folds}
    return {fold.key: fit_prior_share(
                terms[f.key] for f in folds if f.target != fold.target) for fold in folds}


def fold_prior_parts(kb: KnowledgeBase, fold: Fold, goodness: pd.Series) -> PriorParts:
    """The fold's sequential prior before the share mixes it
    (`score_posterior.prior_parts`): its training scores, M&C's `goodness` of the fold,
    the baseline view from the KB's dataset features."""
    from mnc_core.engine import score_posterior as gaussian

    return gaussian.prior_parts(fold_train_scores(kb, fold), kb.higher_is_better, goodness,
                                kb.dataset_features, fold.target)


def fold_share_terms(kb: KnowledgeBase, fold: Fold, parts: PriorParts) -> pd.DataFrame:
    """The fold's `score_posterior.share_terms`: how well its prior (`fold_prior_parts`)
    fits the target's true scores (the sequential protocol's folds and the
    calibration's points both fit the share from these)."""
    from mnc_core.engine import score_posterior as gaussian

    truth = fold.target_edges().set_index("model")["score"]
    return gaussian.share_terms(parts, truth, kb.higher_is_better)


def sparsity_sweep(
    kb: KnowledgeBase,
    settings: EngineSettings | None = None,
    seed: int = 0,
    levels: Sequence[float] = SPARSITY_LEVELS,
    n_seeds: int = SPARSITY_SEEDS,
    targets: Sequence[str] | None = None,
) -> dict:
    """Leave-one-out after dropping each `level` share of model edges, `n_seeds` draws each.

    Returns `methods` (pooled over every level and draw; per-dataset values are the
    mean over levels and draws), `levels` ({level label: {method: {"mean": ...},
    "evaluated": n, "skipped": n}}, labels from `level_label`) and `skipped` (the
    targets evaluated at no level).
    """
    targets = _check_targets(kb, targets)
    _check_levels(levels)
    folds: list[Fold] = []
    level_of: dict[str, float] = {}
    skipped_at: dict[float, int] = {}
    for level in levels:
        skipped_at[level] = 0
        for draw in range(n_seeds):
            kept = drop_edges(kb.edges, level, seed + draw)
            prefix = f"l{level_label(level)}-s{seed + draw}"
            level_folds, skipped = _folds(kb, kept, targets, prefix=prefix)
            skipped_at[level] += len(skipped)
            folds += level_folds
            level_of.update({f.key: level for f in level_folds})
    log.info("sparsity sweep: %d folds over %d levels x %d draws", len(folds), len(levels), n_seeds)
    per_fold = _evaluate(kb, folds, settings, seed, {"mnc": BOTH})
    target_of = {f.key: f.target for f in folds}
    level_results: dict[str, dict] = {}
    for level in levels:
        keys = [k for k, v in level_of.items() if v == level]
        summary = _summarise({m: {k: rows[k] for k in keys} for m, rows in per_fold.items()},
                             target_of)
        level_results[level_label(level)] = {
            **{m: {"mean": s["mean"]} for m, s in summary.items()},
            "evaluated": len(keys),
            "skipped": skipped_at[level],
        }
    evaluated = set(target_of.values())
    return {
        "methods": _summarise(per_fold, target_of),
        "levels": level_results,
        "skipped": [t for t in targets if t not in evaluated],
    }


def level_label(level: float) -> str:
    """A sparsity level as written in fold keys and the JSON (`0.1`, `0.25`)."""
    return f"{level:g}"


def _check_levels(levels: Sequence[float]) -> None:
    """Levels must be given and distinct (each keys its own folds and JSON row).

    The range, [0, 1), is `drop_edges`'s check; it runs before any embedding.
    """
    if not levels:
        raise ValueError("no sparsity levels given")
    labels = [level_label(v) for v in levels]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ValueError(f"sparsity levels repeated: {', '.join(repeated)}")


def drop_edges(edges: pd.DataFrame, level: float, seed: int) -> pd.DataFrame:
    """Keep a random `1 - level` share of the model-dataset edges (seeded)."""
    if not 0 <= level < 1:
        raise ValueError(f"sparsity level must be in [0, 1), got {level}")
    rng = np.random.default_rng([seed, round(level * 1000)])
    n_drop = round(level * len(edges))
    dropped = rng.choice(len(edges), size=n_drop, replace=False)
    return edges.drop(index=edges.index[dropped])


def _check_targets(kb: KnowledgeBase, targets: Sequence[str] | None) -> list[str]:
    if targets is None:
        return list(kb.datasets)
    unknown = [t for t in targets if t not in kb.datasets]
    if unknown:
        raise KeyError(f"target dataset(s) not in the knowledge base: {', '.join(unknown)}")
    return list(targets)


def _folds(
    kb: KnowledgeBase, edges: pd.DataFrame, targets: list[str], prefix: str
) -> tuple[list[Fold], list[str]]:
    """One fold per target that can be evaluated and learned for; the rest are skipped."""
    counts = edges.groupby("dataset")["score"].count()
    folds, skipped = [], []
    for target in targets:
        fold = Fold(key=f"{prefix}-{target}", target=target, known_edges=edges)
        if counts.get(target, 0) < MIN_EVAL_EDGES or not fold.has_training_scores():
            skipped.append(target)
        else:
            folds.append(fold)
    return folds, skipped


def _evaluate(
    kb: KnowledgeBase,
    folds: list[Fold],
    settings: EngineSettings | None,
    seed: int,
    variants: Mapping[str, InputGroups],
) -> dict[str, dict[str, MetricRow]]:
    """Metrics `{method: {fold key: row}}` of the M&C variants and the baselines."""
    started = time.perf_counter()
    reference = overall_best_model(kb.score_matrix(), kb.higher_is_better)
    predictions = predict_folds(kb, folds, settings, seed, variants)
    rows: dict[str, dict[str, MetricRow]] = {m: {} for m in [*variants, *BASELINES]}
    every = max(16, len(folds) // 10)
    for done, fold in enumerate(folds, start=1):
        truth = fold.target_edges().set_index("model")["score"]
        judge = _Judge(kb, fold, truth, reference)

        def score(goodness, judge=judge):
            return judge.row(goodness)

        for name in variants:
            rows[name][fold.key] = score(predictions[name][fold.key].goodness)
        for name, row in _baseline_rows(kb, fold, score, seed, judge).items():
            rows[name][fold.key] = row
        if done % every == 0 or done == len(folds):
            log.info("evaluated %d/%d folds (%.1f s)", done, len(folds),
                     time.perf_counter() - started)
    return rows


class _Judge:
    """Selection and decision metrics of one fold's target (its truth, epsilon, costs)."""

    def __init__(self, kb: KnowledgeBase, fold: Fold, truth: pd.Series, reference: str):
        self.kb, self.truth, self.reference = kb, truth, reference
        self.epsilon, self.costs = target_terms(kb, fold.target, truth)

    def row(self, goodness: pd.Series | None) -> MetricRow:
        if goodness is None:
            return {**empty_metrics(), **empty_decisions()}
        hib = self.kb.higher_is_better
        return {
            **dataset_metrics(goodness, self.truth, hib, self.reference),
            **decision_metrics(goodness, self.truth, hib, self.epsilon, self.costs),
        }

    def random_decisions(self) -> MetricRow:
        """Random's decision metrics: exact expectations over every ordering."""
        return random_decision_metrics(
            self.truth, self.kb.higher_is_better, self.epsilon, self.costs
        )


def _baseline_rows(
    kb: KnowledgeBase, fold: Fold, score, seed: int, judge: _Judge
) -> dict[str, MetricRow]:
    """Metric rows of every baseline on one fold (Random's decisions exact, not sampled)."""
    train_scores = fold_train_scores(kb, fold)
    before = fold.target_edges().set_index("model")["score_before"]
    randoms = [score(g) for g in baselines.random_orderings(kb.models, seed, fold.key)]
    return {
        "overall": score(baselines.overall_goodness(train_scores, kb.higher_is_better)),
        "initial": score(baselines.initial_goodness(before, kb.higher_is_better)),
        "direct": score(
            baselines.direct_goodness(
                train_scores, kb.dataset_features, fold.target, kb.higher_is_better, seed
            )
        ),
        "random": {**mean_metrics(randoms), **judge.random_decisions()},
    }


def _per_dataset_row(rows: list[MetricRow], selection: bool = True) -> MetricRow:
    """One dataset's row, the mean of its folds (sparsity: levels and draws)."""
    summary = summary_row(rows) if selection else mean_decisions(rows)
    return {k: v for k, v in summary.items() if not k.startswith("fine_tunings_to_near_best_")}


def _summarise(
    per_fold: Mapping[str, Mapping[str, MetricRow]],
    target_of: Mapping[str, str],
    selection: bool = True,
) -> dict[str, dict]:
    """`{method: {"mean": row, "per_dataset": {dataset: row}}}`; repeated datasets averaged."""
    out = {}
    for method, rows in per_fold.items():
        by_dataset: dict[str, list[MetricRow]] = {}
        for key, row in rows.items():
            by_dataset.setdefault(target_of[key], []).append(row)
        per_dataset = {d: _per_dataset_row(r, selection) for d, r in by_dataset.items()}
        mean = summary_row(rows.values()) if selection else mean_decisions(rows.values())
        out[method] = {"mean": mean, "per_dataset": per_dataset}
    return out

