"""Selection-quality metrics, defined once (paper section 5.1).

Every method (M&C, baselines) hands in, for one dataset, a *predicted goodness* per
model (higher = predicted better). The true scores come from the KB in their own
direction (`higher_is_better`); every metric orients them itself, so the same code
serves CLIP-FID (lower is better) and accuracy (higher is better).

Per dataset (only models with a known true score count):
- `osr`: 1.0 when the predicted best model is a true best (ties count, within
  `TIE_TOLERANCE` times the dataset's largest score magnitude), else 0.0; the mean
  over datasets is the Optimal Selection Ratio.
- `wtau`: `scipy.stats.weightedtau(predicted goodness, true goodness)`, both
  oriented so higher = better (top ranks weigh more).
- `o2b`: score of the predicted best minus the score of the reference "overall best"
  model (best mean rank over all datasets of the KB) on this dataset, signed so
  that lower is better (negative = better than always picking the overall best).
- `o2o`: score of the predicted best minus the true best score, signed so that it
  is >= 0 (0 = optimal choice).
- `top1`: predicted best's score relative to the true best's: pred/true when
  higher is better, true/pred when lower is better (1.0 = optimal).
- `pearson`: Pearson correlation of predicted goodness and oriented true scores.
A metric that does not apply (fewer than two scored models, constant input, the
overall best not scored on this dataset, a zero denominator) is None (JSON null).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

METRIC_NAMES = ("osr", "wtau", "o2b", "o2o", "top1", "pearson")
# Direction of each metric, for tables and "who wins" comparisons.
HIGHER_IS_BETTER_METRIC = {
    "osr": True,
    "wtau": True,
    "o2b": False,
    "o2o": False,
    "top1": True,
    "pearson": True,
}

MetricRow = dict[str, float | None]
# Scores closer than this fraction of the dataset's score scale count as a tie (float
# noise of an average, not a better model). Relative, not absolute: 1e-12 would call
# every model a tie on scores near 1e-13 and none on scores near 1e9.
TIE_TOLERANCE = 1e-9


def empty_metrics() -> MetricRow:
    """All metrics null: the method does not apply to this dataset."""
    return dict.fromkeys(METRIC_NAMES)


def oriented(scores: pd.Series, higher_is_better: bool) -> pd.Series:
    """Scores turned into goodness (higher = better)."""
    return scores if higher_is_better else -scores


def dataset_metrics(
    predicted: pd.Series,
    true_scores: pd.Series,
    higher_is_better: bool,
    overall_best: str | None,
) -> MetricRow:
    """Metrics of one dataset.

    `predicted`: model -> predicted goodness (higher = better), may hold models with
    no known score; `true_scores`: model -> true score (NaN = unknown) in the KB's
    direction; `overall_best`: the reference model for O2B.
    """
    truth = true_scores.dropna()
    common = [m for m in predicted.index if m in truth.index and not pd.isna(predicted[m])]
    if not common:
        return empty_metrics()
    pred = predicted.loc[common].astype(float)
    true = truth.loc[common].astype(float)
    good = oriented(true, higher_is_better)
    chosen = pred.idxmax()
    best_score = true.loc[good.idxmax()]
    chosen_score = true.loc[chosen]
    sign = -1.0 if higher_is_better else 1.0
    row = empty_metrics()
    row["osr"] = float(is_tie(good.loc[chosen], good.max(), good))
    row["o2o"] = _finite(max(0.0, sign * (chosen_score - best_score)))
    if overall_best is not None and overall_best in true.index:
        row["o2b"] = _finite(sign * (chosen_score - true.loc[overall_best]))
    row["top1"] = _ratio(chosen_score, best_score, higher_is_better)
    if len(common) >= 2 and pred.nunique() > 1 and good.nunique() > 1:
        row["wtau"] = _finite(stats.weightedtau(pred.to_numpy(), good.to_numpy()).statistic)
        row["pearson"] = _finite(stats.pearsonr(pred.to_numpy(), good.to_numpy()).statistic)
    return {k: (None if v is None else float(v)) for k, v in row.items()}


def is_tie(a: float, b: float, scores: pd.Series) -> bool:
    """Whether `a` and `b` are equal up to `TIE_TOLERANCE` of the scale of `scores`."""
    scale = float(np.abs(scores.to_numpy(dtype=float)).max())
    return abs(a - b) <= TIE_TOLERANCE * scale


def _ratio(chosen: float, best: float, higher_is_better: bool) -> float | None:
    """top@1: chosen/best (higher is better) or best/chosen (lower is better).

    None unless both scores are positive: a ratio of signed scores can exceed 1 for a
    wrong pick (-2 / -1), so it would not measure how close the pick came.
    """
    if not (chosen > 0 and best > 0):
        return None
    numerator, denominator = (chosen, best) if higher_is_better else (best, chosen)
    return _finite(numerator / denominator)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def mean_metrics(rows: Iterable[Mapping[str, float | None]]) -> MetricRow:
    """Mean of each metric over the datasets where it applies (None if nowhere)."""
    rows = list(rows)
    out = empty_metrics()
    for name in METRIC_NAMES:
        values = [r[name] for r in rows if r.get(name) is not None]
        out[name] = float(np.mean(values)) if values else None
    return out


def overall_best_model(score_matrix: pd.DataFrame, higher_is_better: bool) -> str:
    """The model with the best mean rank over the datasets of `score_matrix`.

    `score_matrix`: dataset x model (NaN = unknown). Ranks are normalised per
    dataset to [0, 1] (0 = best) so datasets with fewer known models weigh the same.
    """
    return str(mean_normalised_rank(score_matrix, higher_is_better).idxmin())


# The normalised rank given to a model with no known score: the middle, neither good nor bad.
UNKNOWN_RANK = 0.5


def normalised_ranks(score_matrix: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """Per dataset (row): rank of each known model scaled to [0, 1], 0 = best.

    Ties share their average rank; a dataset with a single known model gets 0.
    """
    ranks = score_matrix.rank(axis=1, ascending=not higher_is_better, method="average")
    known = score_matrix.notna().sum(axis=1)
    span = (known - 1).where(known > 1, 1)
    return ranks.sub(1).div(span, axis=0)


def mean_normalised_rank(score_matrix: pd.DataFrame, higher_is_better: bool) -> pd.Series:
    """Each model's mean normalised rank over the datasets it has a score on (NaN if none)."""
    return normalised_ranks(score_matrix, higher_is_better).mean(axis=0, skipna=True)
