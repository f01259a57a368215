"""Decision metrics: what a team pays for a recommendation, in fine-tunings and GPU hours.

The selection metrics (`metrics.py`) say how well a predicted ranking agrees with the
truth; these say what following it costs. A method hands in, for one dataset, an
*order* in which to fine-tune the models (best predicted first: the predicted
goodness sorted descending, ties kept in the zoo's model order). Only models with a
known true score count, as for the selection metrics.

Per dataset:
- `regret@k` (k = 1, 3, 5): true best score minus the best true score among the first
  k of the order, oriented so that it is >= 0 (0 = the best model is among them), in
  the KB's score unit (accuracy fraction or percent, FID);
- `hit@k`: 1.0 when a true best (ties within `metrics.TIE_TOLERANCE` count) is among
  the first k, else 0.0; the mean over datasets is the share of datasets;
- `fine_tunings_to_near_best`: how many models one fine-tunes in that order until one
  is *near-best*, i.e. within `epsilon` of the true best (1 = the first pick is);
- `gpu_hours_to_near_best`: the GPU hours of those fine-tunings (the KB's `cost`
  column for each (model, dataset) edge); None when the KB has no cost for one of them.

Epsilon (`near_best_epsilon`), one rule per metric family:
- higher is better (accuracy): half an accuracy point, 0.005 on a fraction scale
  (TransferGraph's `eval_accuracy`), 0.5 on a percent scale (PARC's
  `oracle_accuracy`); the scale is the metric's declared score range
  (`mnc_core.kb.store.score_range`: upper bound 1 = fraction) or, for names whose
  range allows both (`*accuracy`: [0, 100]), the scores themselves (all <= 1 =
  fraction);
- lower is better (CLIP-FID): 1 % of the best (lowest) score.

Random's values are exact expectations over all orderings of the scored models
(`random_decision_metrics`), not the mean of a few sampled orderings:
- regret@k: with oriented scores sorted g(1) >= ... >= g(n), the best of a random
  k-subset is g(i) with probability C(n - i, k - 1) / C(n, k);
- hit@k: 1 - C(n - t, k) / C(n, k) with t tied best models;
- fine-tunings to near-best: (n + 1) / (m + 1) with m near-best models (the first of
  m marked items in a random permutation of n);
- GPU hours: a model outside the near-best set is fine-tuned before the first
  near-best one with probability 1 / (m + 1), a near-best one is that first one with
  probability 1 / m: sum of cost / (m + 1) over the others plus cost / m over the
  near-best set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mnc_core.engine.metrics import is_tie, mean_metrics, oriented

REGRET_KS = (1, 3, 5)
ACCURACY_EPSILON_POINTS = 0.5  # near-best on accuracy: within half an accuracy point
FID_EPSILON_SHARE = 0.01  # near-best on FID-like (lower is better): within 1 % of the best
DECISION_METRIC_NAMES = (
    *(f"regret@{k}" for k in REGRET_KS),
    *(f"hit@{k}" for k in REGRET_KS),
    "fine_tunings_to_near_best",
    "gpu_hours_to_near_best",
)
# Spread of the per-dataset counts, beside their mean, in every `mean` entry.
SPREAD_KEYS = ("fine_tunings_to_near_best_median", "fine_tunings_to_near_best_max")
HIGHER_IS_BETTER_DECISION = {
    **{f"regret@{k}": False for k in REGRET_KS},
    **{f"hit@{k}": True for k in REGRET_KS},
    "fine_tunings_to_near_best": False,
    "gpu_hours_to_near_best": False,
}

DecisionRow = dict[str, float | None]


def empty_decisions() -> DecisionRow:
    """Every decision metric null: the method does not apply to this dataset."""
    return dict.fromkeys(DECISION_METRIC_NAMES)


def _null_row(ks: Sequence[int], regret_key: str) -> DecisionRow:
    """The decision entries of `ks` under `regret_key`, all null until computed."""
    row: DecisionRow = {regret_key.format(k=k): None for k in ks}
    row |= {f"hit@{k}": None for k in ks}
    return row | {"fine_tunings_to_near_best": None, "gpu_hours_to_near_best": None}


def accuracy_point(metric: str, scores: Iterable[float]) -> float:
    """One accuracy point in the KB's unit: 0.01 on a fraction scale, 1.0 on percent."""
    from mnc_core.kb.store import score_range

    low, high = score_range(metric)
    if high == 1.0:
        return 0.01
    if high == 100.0:
        values = np.asarray(list(scores), dtype=float)
        return 0.01 if values.size and np.nanmax(np.abs(values)) <= 1.0 else 1.0
    return 1.0


def near_best_epsilon(
    metric: str, higher_is_better: bool, best: float, all_scores: Iterable[float] = ()
) -> float:
    """How far below the best (in the KB's unit) a model still counts as near-best.

    `best`: the dataset's true best score; `all_scores`: the KB's scores (they decide
    fraction vs percent when the metric's name allows both).
    """
    if not higher_is_better:
        return FID_EPSILON_SHARE * abs(float(best))
    return ACCURACY_EPSILON_POINTS * accuracy_point(metric, all_scores)


def kb_epsilon(kb, best: float) -> float:
    """`near_best_epsilon` for a knowledge base's metric, direction and scores."""
    return near_best_epsilon(kb.metric, kb.higher_is_better, best, kb.edges["score"])


def order_of(goodness: pd.Series) -> list[str]:
    """Models best predicted first: goodness descending, ties in the given order, NaN last."""
    values = goodness.astype(float)
    known = values.dropna()
    ranked = known.iloc[np.argsort(-known.to_numpy(), kind="stable")]
    return [*ranked.index, *values.index[values.isna()]]


def order_decisions(
    order: Sequence[str],
    true_scores: pd.Series,
    higher_is_better: bool,
    epsilon: float,
    costs: pd.Series | None = None,
    ks: Sequence[int] = REGRET_KS,
    regret_key: str = "regret@{k}",
) -> DecisionRow:
    """Decision metrics of fine-tuning the models in `order` (best first).

    `true_scores`: model -> true score (NaN = unknown; unknown models are skipped);
    `costs`: model -> GPU hours of fine-tuning it on this dataset (NaN = unknown).
    `regret_key` names the regret entries (the sequential protocol's `regret_after_{k}`).
    """
    truth = true_scores.dropna().astype(float)
    picks = [m for m in dict.fromkeys(order) if m in truth.index]
    row = _null_row(ks, regret_key)
    if not picks:
        return row
    good = oriented(truth.loc[picks], higher_is_better).to_numpy()
    best = good.max()
    tied = np.array([is_tie(g, best, truth) for g in good])
    prefix_best = np.maximum.accumulate(good)
    for k in ks:
        upto = min(k, len(picks))
        row[regret_key.format(k=k)] = float(max(0.0, best - prefix_best[upto - 1]))
        row[f"hit@{k}"] = float(tied[:upto].any())
    near = good >= best - epsilon - _slack(truth)
    first = int(np.argmax(near))  # the true best is near-best, so one is found
    row["fine_tunings_to_near_best"] = float(first + 1)
    row["gpu_hours_to_near_best"] = _hours(costs, picks[: first + 1])
    return row


def decision_metrics(
    predicted: pd.Series,
    true_scores: pd.Series,
    higher_is_better: bool,
    epsilon: float,
    costs: pd.Series | None = None,
) -> DecisionRow:
    """Decision metrics of the order implied by a predicted goodness (None = not applicable)."""
    if predicted is None:
        return empty_decisions()
    row = order_decisions(order_of(predicted), true_scores, higher_is_better, epsilon, costs)
    return row


def random_decision_metrics(
    true_scores: pd.Series,
    higher_is_better: bool,
    epsilon: float,
    costs: pd.Series | None = None,
    ks: Sequence[int] = REGRET_KS,
    regret_key: str = "regret@{k}",
) -> DecisionRow:
    """Exact expectations of the decision metrics over all orderings of the scored models."""
    truth = true_scores.dropna().astype(float)
    row = _null_row(ks, regret_key)
    n = len(truth)
    if n == 0:
        return row
    good = np.sort(oriented(truth, higher_is_better).to_numpy())[::-1]
    best = good[0]
    n_tied = sum(is_tie(g, best, truth) for g in good)
    for k in ks:
        kk = min(k, n)
        total = math.comb(n, kk)
        # P(the best of a random kk-subset is the i-th best), i = 1..n-kk+1
        weights = np.array([math.comb(n - i, kk - 1) for i in range(1, n - kk + 2)], float)
        expected_best = float(weights @ good[: n - kk + 1]) / total
        row[regret_key.format(k=k)] = max(0.0, float(best - expected_best))
        row[f"hit@{k}"] = 1.0 - math.comb(n - n_tied, kk) / total
    near_mask = oriented(truth, higher_is_better) >= best - epsilon - _slack(truth)
    m = int(near_mask.sum())
    row["fine_tunings_to_near_best"] = (n + 1) / (m + 1)
    if costs is not None:
        cost = costs.reindex(truth.index).astype(float)
        if not cost.isna().any():
            row["gpu_hours_to_near_best"] = float(
                cost[~near_mask].sum() / (m + 1) + cost[near_mask].sum() / m
            )
    return row


def _slack(truth: pd.Series) -> float:
    """Float slack of the near-best test (an edge exactly epsilon away counts as near)."""
    from mnc_core.engine.metrics import TIE_TOLERANCE

    return TIE_TOLERANCE * float(np.abs(truth.to_numpy(dtype=float)).max())


def _hours(costs: pd.Series | None, models: Sequence[str]) -> float | None:
    if costs is None:
        return None
    values = costs.reindex(list(models)).astype(float)
    return None if values.isna().any() else float(values.sum())


def mean_decisions(rows: Iterable[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Mean over datasets of every decision entry the rows hold (None where none applies),
    plus the median and max of the fine-tunings to near-best (`SPREAD_KEYS`)."""
    rows = list(rows)
    names = [n for n in dict.fromkeys(k for r in rows for k in r) if _is_decision(n)]
    out: dict[str, float | None] = {}
    for name in names:
        values = [r[name] for r in rows if r.get(name) is not None]
        out[name] = float(np.mean(values)) if values else None
    counts = [r["fine_tunings_to_near_best"] for r in rows
              if r.get("fine_tunings_to_near_best") is not None]
    if "fine_tunings_to_near_best" in names:
        out[SPREAD_KEYS[0]] = float(np.median(counts)) if counts else None
        out[SPREAD_KEYS[1]] = float(np.max(counts)) if counts else None
    return out


def _is_decision(name: str) -> bool:
    return name in DECISION_METRIC_NAMES or name.startswith("regret_after_")


def summary_row(rows: Iterable[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Selection metrics (`mean_metrics`) and decision metrics averaged over datasets."""
    rows = list(rows)
    return {**mean_metrics(rows), **mean_decisions(rows)}


def edge_costs(edges: pd.DataFrame, dataset: str) -> pd.Series | None:
    """model -> GPU hours of its fine-tuning on `dataset` (None when the KB has no costs)."""
    if "cost" not in edges or edges["cost"].isna().all():
        return None
    rows = edges[edges["dataset"] == dataset]
    return rows.set_index("model")["cost"].astype(float)


def target_terms(kb, dataset: str, truth: pd.Series) -> tuple[float, pd.Series | None]:
    """What judging a decision on `dataset` needs besides its order: the near-best
    epsilon of its best known true score (`truth`: model -> score, NaN = unknown; 0
    when none is known) and its GPU-hour costs (None without costs)."""
    known = truth.dropna().astype(float)
    epsilon = 0.0
    if not known.empty:
        epsilon = kb_epsilon(kb, known.max() if kb.higher_is_better else known.min())
    return epsilon, edge_costs(kb.edges, dataset)
