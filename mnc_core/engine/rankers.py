"""Rankers: CatBoost learners behind one interface, chosen by name (`--ranker NAME`).

Each ranker fits on the training pairs of a fold (inputs grouped by dataset) and,
for a new dataset, returns per model a *goodness* (higher = predicted better, what
the metrics consume), the rank it implies (1 = best) and a confidence:

- `catboost-class` (default, the paper's): CatBoost MultiClass over rank classes.
  Goodness = -(expected class under the predicted class probabilities); confidence
  = probability of the most likely class (how sure it is of that model's rank).
- `catboost-yetirank`: CatBoostRanker with YetiRank, queries = datasets, relevance =
  `n_classes - 1 - rank_class`. Goodness = the ranker's score. No probabilities, so
  confidence is null.
- `catboost-regression`: CatBoostRegressor (RMSE) on the normalised rank (0 = best).
  Goodness = -predicted rank. Confidence is null.

Speed settings (fixed for all data, not tuned per fold): 300 iterations (the
paper's), depth 4, 8 feature borders, plain boosting and one leaf-estimation
step; with a few hundred training rows this is many times faster than CatBoost's
defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DEFAULT_RANKER = "catboost-class"


@dataclass(frozen=True)
class CatBoostSettings:
    """CatBoost parameters shared by every ranker."""

    iterations: int = 300
    depth: int = 4
    border_count: int = 8
    learning_rate: float | None = None
    thread_count: int = 1

    def params(self, seed: int) -> dict:
        params = {
            "iterations": self.iterations,
            "depth": self.depth,
            "border_count": self.border_count,
            "boosting_type": "Plain",
            "leaf_estimation_iterations": 1,
            "random_seed": seed,
            "thread_count": self.thread_count,
            "verbose": 0,
            "allow_writing_files": False,
        }
        if self.learning_rate is not None:
            params["learning_rate"] = self.learning_rate
        return params


@dataclass
class RankPrediction:
    """Per model (index): goodness (higher = better), rank (1 = best), confidence."""

    table: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def goodness(self) -> pd.Series:
        return self.table["goodness"]


class Ranker:
    """Interface: fit on grouped training pairs, predict the pairs of one dataset."""

    def fit(self, inputs: pd.DataFrame, targets: pd.DataFrame, n_classes: int) -> Ranker:
        raise NotImplementedError

    def predict(self, inputs: pd.DataFrame) -> RankPrediction:
        raise NotImplementedError


def _constant(values: np.ndarray) -> bool:
    """Whether every training target is the same: nothing to learn, CatBoost refuses it.

    Happens on sparse KBs (every training dataset with one known model); the rankers
    then predict a tie (goodness 0 for every model, confidence unknown).
    """
    return len(np.unique(values)) <= 1


def _tie(inputs: pd.DataFrame) -> RankPrediction:
    """What a ranker fitted on constant targets predicts: every model level, no confidence."""
    return _with_ranks(np.zeros(len(inputs)), inputs.index, np.nan)


def _with_ranks(goodness: np.ndarray, index: pd.Index, confidence) -> RankPrediction:
    """Attach the predicted rank (1 = best) implied by the goodness order."""
    table = pd.DataFrame({"goodness": goodness}, index=index)
    table["rank"] = table["goodness"].rank(ascending=False, method="first").astype(int)
    table["confidence"] = confidence
    return RankPrediction(table)


class ClassRanker(Ranker):
    """CatBoost classification over rank classes (paper section 4.4)."""

    def __init__(self, settings: CatBoostSettings, seed: int) -> None:
        self.settings, self.seed = settings, seed

    def fit(self, inputs, targets, n_classes):
        from catboost import CatBoostClassifier

        labels = targets["rank_class"].to_numpy()
        self.model = None
        if _constant(labels):
            return self
        self.model = CatBoostClassifier(
            loss_function="MultiClass", **self.settings.params(self.seed)
        )
        self.model.fit(inputs.to_numpy(), labels)
        return self

    def predict(self, inputs):
        if self.model is None:
            return _tie(inputs)
        probabilities = self.model.predict_proba(inputs.to_numpy())
        classes = np.asarray(self.model.classes_, dtype=float)
        expected = probabilities @ classes
        return _with_ranks(-expected, inputs.index, probabilities.max(axis=1))


class YetiRanker(Ranker):
    """CatBoost learning-to-rank (YetiRank), one query per training dataset."""

    def __init__(self, settings: CatBoostSettings, seed: int) -> None:
        self.settings, self.seed = settings, seed

    def fit(self, inputs, targets, n_classes):
        from catboost import CatBoostRanker, Pool

        relevance = (n_classes - 1 - targets["rank_class"]).to_numpy(dtype=float)
        self.model = None
        if _constant(relevance):
            return self
        groups = pd.factorize(targets["dataset"])[0]
        self.model = CatBoostRanker(loss_function="YetiRank", **self.settings.params(self.seed))
        self.model.fit(Pool(inputs.to_numpy(), relevance, group_id=groups))
        return self

    def predict(self, inputs):
        if self.model is None:
            return _tie(inputs)
        return _with_ranks(self.model.predict(inputs.to_numpy()), inputs.index, np.nan)


class RegressionRanker(Ranker):
    """CatBoost regression on the normalised rank (0 = best)."""

    def __init__(self, settings: CatBoostSettings, seed: int) -> None:
        self.settings, self.seed = settings, seed

    def fit(self, inputs, targets, n_classes):
        from catboost import CatBoostRegressor

        ranks = targets["norm_rank"].to_numpy(dtype=float)
        self.model = None
        if _constant(ranks):
            return self
        self.model = CatBoostRegressor(loss_function="RMSE", **self.settings.params(self.seed))
        self.model.fit(inputs.to_numpy(), ranks)
        return self

    def predict(self, inputs):
        if self.model is None:
            return _tie(inputs)
        return _with_ranks(-self.model.predict(inputs.to_numpy()), inputs.index, np.nan)


RANKERS: dict[str, Callable[[CatBoostSettings, int], Ranker]] = {
    "catboost-class": ClassRanker,
    "catboost-yetirank": YetiRanker,
    "catboost-regression": RegressionRanker,
}


def check_ranker_name(name: str) -> None:
    """Refuse an unknown ranker name, listing the known ones (checked before long work)."""
    if name not in RANKERS:
        raise ValueError(f"unknown ranker {name!r}; choose one of {', '.join(RANKERS)}")


def make_ranker(name: str, settings: CatBoostSettings | None = None, seed: int = 0) -> Ranker:
    """A fresh ranker by registry name; unknown names list the known ones."""
    check_ranker_name(name)
    return RANKERS[name](settings or CatBoostSettings(), seed)


def feature_importances(ranker: Ranker, columns: Sequence[str]) -> pd.Series:
    """CatBoost's importance of each input column (sums to 100), largest first.

    Empty when the ranker learned nothing (constant targets, no model fitted).
    """
    model = getattr(ranker, "model", None)
    if model is None:
        return pd.Series(dtype=float, name="importance")
    values = model.get_feature_importance()
    return pd.Series(values, index=list(columns), name="importance").sort_values(
        ascending=False
    )
