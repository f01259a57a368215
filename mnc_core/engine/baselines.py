"""Baselines of paper section 5.1, as predicted goodness per model (higher = better).

Each baseline sees what M&C sees in a fold: the training datasets' scores, the
target's features and, for Initial, the target's scores *before* fine-tuning (which
are cheap to measure, so legitimately known for a new dataset). A baseline that
cannot apply returns None and is reported with every metric null.

- Overall: minus the model's mean normalised rank over the training datasets; the
  same ranking for every target.
- Initial: the score before fine-tuning, oriented (None when the target has none).
- Direct: a multi-output random forest regressor from dataset features alone to the
  normalised rank of every model (unknown training ranks filled with the model's
  mean rank); goodness = minus the predicted rank. None without dataset features.
- Random: seeded random permutations, `RANDOM_SEEDS` per fold and different in each
  fold; the protocols average their metrics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mnc_core.engine.embedding import stable_hash
from mnc_core.engine.metrics import (
    UNKNOWN_RANK,
    mean_normalised_rank,
    normalised_ranks,
    oriented,
)

RANDOM_SEEDS = 5
DIRECT_TREES = 100


def overall_goodness(train_scores: pd.DataFrame, higher_is_better: bool) -> pd.Series:
    """Minus each model's mean normalised rank on the training datasets (-0.5 if unseen)."""
    return -mean_normalised_rank(train_scores, higher_is_better).fillna(UNKNOWN_RANK)


def initial_goodness(before_scores: pd.Series, higher_is_better: bool) -> pd.Series | None:
    """The target's oriented scores before fine-tuning; None when none are known."""
    known = before_scores.dropna()
    if known.empty:
        return None
    return oriented(before_scores.astype(float), higher_is_better)


def direct_goodness(
    train_scores: pd.DataFrame,
    dataset_features: pd.DataFrame,
    target: str,
    higher_is_better: bool,
    seed: int = 0,
) -> pd.Series | None:
    """Random forest on dataset features only -> every model's rank; None if no features."""
    if dataset_features.shape[1] == 0 or len(train_scores) < 2:
        return None
    from sklearn.ensemble import RandomForestRegressor

    ranks = normalised_ranks(train_scores, higher_is_better)
    ranks = ranks.fillna(ranks.mean(axis=0)).fillna(UNKNOWN_RANK)
    forest = RandomForestRegressor(n_estimators=DIRECT_TREES, random_state=seed, n_jobs=1)
    forest.fit(dataset_features.loc[ranks.index].to_numpy(), ranks.to_numpy())
    predicted = forest.predict(dataset_features.loc[[target]].to_numpy())[0]
    return pd.Series(-predicted, index=ranks.columns)


def random_orderings(models: list[str], seed: int, fold_key: str) -> list[pd.Series]:
    """`RANDOM_SEEDS` seeded random orderings of the models, drawn afresh for each fold.

    The fold's key is part of the seed: with one set of orderings reused on every
    dataset, the same few models would be "picked" everywhere and the baseline's
    average would swing with them.
    """
    orderings = []
    for draw in range(RANDOM_SEEDS):
        rng = np.random.default_rng([seed, draw, stable_hash(fold_key)])
        orderings.append(pd.Series(rng.permutation(len(models)).astype(float), index=models))
    return orderings
