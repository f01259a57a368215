"""M&C's sequential update: a Gaussian posterior of the new dataset's scores.

Once the team has fine-tuned some models on the new dataset, their scores say more
than their order: a model whose scores rise and fall with a revealed model's across
the training datasets is likely to do on the new dataset what that model did.

The model (multi-task Gaussian conditioning, as in collaborative hyper-parameter
search):
- each training dataset's scores (oriented, higher = better) standardised to z-scores
  is one draw of a dataset's score vector over the models; the models' covariance
  across datasets is estimated with Ledoit-Wolf shrinkage (scikit-learn's standard
  estimator for few samples, here datasets, against many variables, here models);
- the new dataset's scores, divided by the training datasets' median spread, are such
  a vector plus a level of its own (a constant with the broad prior variance
  `LEVEL_VARIANCE`: how hard the dataset is is unknown) plus the nugget `NUGGET`
  (seed-to-seed noise of a fine-tuning score);
- the prior mean is M&C's one-shot ranking read on the training datasets' scale (the
  r-th ranked model gets the mean z-score of the r-th best model of the training
  datasets), mixed with a baseline view without M&C: each model's z-score predicted
  from the new dataset's features by a ridge regression over the training datasets
  (`feature_regression`: scikit-learn's `RidgeCV`, its penalty chosen by leave-one-out;
  a large penalty gives back each model's mean z-score, the Overall baseline's view,
  which is also the baseline where the KB has no dataset features). How much of M&C
  to take is measured, not assumed: the share is the least-squares fit of the prior
  mean to the true z-scores over leave-one-out folds of other datasets (`share_terms`,
  `fit_prior_share`; the sequential protocol fits it on its other folds, the platform
  on its stored calibration), so a KB where M&C's one-shot ranking predicts worse than
  the baseline gets less of it. `PRIOR_SHARE` where nothing fits it (`mnc next`
  without `--calibration`).

Revealed scores condition the Gaussian (kriging). The first pick is the largest prior
mean; every later pick the largest expected improvement over the best score so far
(the standard Bayesian-optimisation rule: a model that is likely good, or uncertain
where the tried ones were poor, comes next). Near-best probabilities (within the
decision epsilon of the dataset's best, as in `decisions`) are Monte Carlo over the
joint posterior of the untried models, with the tried scores fixed (Laplace's rule:
never exactly 0 or 1).

Measured against the earlier rank-scenario update in docs/engine.md "Sequential
selection" (benchmarks/engine_decisions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from mnc_core.engine.metrics import oriented

PRIOR_SHARE = 0.5  # M&C's share of the prior mean when none is fitted (rest: the baseline)
LEVEL_VARIANCE = 10.0  # prior variance of the new dataset's level, in z units
NUGGET = 0.05  # noise variance of one revealed score, in z units
SAMPLES = 2000  # Monte Carlo draws for the near-best probabilities
TIE_BREAK = 1e-6  # share of the posterior mean added to a pick's score to break ties
SHARE_COLUMNS = ("share_num", "share_den")  # a model's least-squares terms (`share_terms`)
# Ridge penalties RidgeCV chooses from by leave-one-out (features standardised): from
# nearly least squares to nearly the mean z-scores.
RIDGE_PENALTIES = tuple(np.logspace(-2, 4, 13))
MIN_REGRESSION_DATASETS = 3  # fewer training datasets with features: the mean z-scores
# What the baseline view is (`PriorParts.baseline_kind`, `mnc next`'s `prior_baseline`).
REGRESSION_BASELINE = "feature regression"
MEAN_BASELINE = "mean z-scores"


@dataclass(frozen=True)
class ScorePosterior:
    """The prior of the new dataset's scores (z units: raw oriented score / `scale`)."""

    models: list[str]
    mean: np.ndarray
    cov: np.ndarray
    scale: float
    higher_is_better: bool
    epsilon_of: Callable[[float], float]
    typical_best: float  # median raw best of the training datasets (epsilon before any reveal)
    baseline_kind: str = MEAN_BASELINE  # the view mixed with M&C's ranking (`PriorParts`)


@dataclass(frozen=True)
class PriorParts:
    """What the prior is made of, before M&C's share mixes its two means (z units)."""

    models: list[str]
    ranking: np.ndarray | None  # M&C's ranking read on the training scale (None: no data)
    average: np.ndarray  # each model's mean z-score (the Overall baseline's view)
    baseline: np.ndarray  # the view M&C's share is mixed with (`feature_regression`)
    covariance: np.ndarray
    scale: float
    typical_best: float
    baseline_kind: str = MEAN_BASELINE  # REGRESSION_BASELINE where the regression fitted


def prior_parts(
    train_scores: pd.DataFrame, higher_is_better: bool, prior_goodness: pd.Series,
    dataset_features: pd.DataFrame | None = None, target: str | None = None,
) -> PriorParts:
    """The prior's parts from the training datasets' scores (dataset x model, NaN =
    unknown) and M&C's one-shot goodness of each model (higher = better).

    `dataset_features` (dataset x feature, the KB's table) and `target` (the new
    dataset's id in it) feed the baseline view (`feature_regression`); without them
    the baseline is each model's mean z-score.
    """
    from sklearn.covariance import LedoitWolf

    models = list(dict.fromkeys([*map(str, prior_goodness.index), *map(str, train_scores.columns)]))
    scores = oriented(train_scores.T, higher_is_better).T.astype(float).reindex(columns=models)
    spread = scores.std(axis=1)
    usable = (scores.notna().sum(axis=1) >= 2) & (spread > 0)
    scores, spread = scores[usable], spread[usable]
    if scores.empty:  # nothing to learn a scale or covariance from
        zeros = np.zeros(len(models))
        return PriorParts(models, None, zeros, zeros, np.eye(len(models)), 1.0, float("nan"))
    z = scores.sub(scores.mean(axis=1), axis=0).div(spread, axis=0)
    average = z.mean().fillna(0.0)
    filled = z.fillna(average).to_numpy()
    covariance = LedoitWolf().fit(filled).covariance_ if len(z) > 1 else np.eye(len(models))
    profile = _rank_profile(z.to_numpy())
    goodness = prior_goodness.astype(float).reindex(models)
    ranks = goodness.rank(ascending=False, method="first", na_option="bottom")
    position = np.minimum(ranks.to_numpy().astype(int) - 1, len(profile) - 1)
    raw_best = scores.max(axis=1) * (1 if higher_is_better else -1)
    regression = feature_regression(z.fillna(average), dataset_features, target)
    fitted = regression is not None
    return PriorParts(models, profile[position], average.to_numpy(),
                      regression if fitted else average.to_numpy(), covariance,
                      float(spread.median()), float(raw_best.median()),
                      REGRESSION_BASELINE if fitted else MEAN_BASELINE)


def feature_regression(
    z: pd.DataFrame, dataset_features: pd.DataFrame | None, target: str | None
) -> np.ndarray | None:
    """Each model's z-score on `target` predicted from its dataset features: one ridge
    regression of the training datasets' z-scores (dataset x model, complete) on their
    standardised features, the penalty chosen among `RIDGE_PENALTIES` by RidgeCV's
    leave-one-out. Datasets alike in features often rank the models alike (what M&C's
    graph also uses, through dataset distances), and a regression says so in the
    scores' own units. None where it cannot fit: no features, the target's unknown, or
    fewer than `MIN_REGRESSION_DATASETS` training datasets with features (only the
    feature columns known for the target and all those datasets are used)."""
    if dataset_features is None or target is None or target not in dataset_features.index:
        return None
    rows = [d for d in z.index if d in dataset_features.index]
    features = dataset_features.loc[[*rows, target]].astype(float)
    features = features.loc[:, np.isfinite(features.to_numpy()).all(axis=0)]
    if features.shape[1] == 0 or len(rows) < MIN_REGRESSION_DATASETS:
        return None
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_PENALTIES))
    model.fit(features.loc[rows].to_numpy(), z.loc[rows].to_numpy())
    return model.predict(features.loc[[target]].to_numpy())[0]


def build_posterior(
    train_scores: pd.DataFrame,
    higher_is_better: bool,
    epsilon_of: Callable[[float], float],
    prior_goodness: pd.Series,
    prior_share: float = PRIOR_SHARE,
    dataset_features: pd.DataFrame | None = None,
    target: str | None = None,
) -> ScorePosterior:
    """The prior from the training datasets' scores (dataset x model, NaN = unknown)
    and M&C's one-shot goodness of each model (higher = better): `posterior_of` the
    `prior_parts` (the baseline view from `dataset_features` and `target` when given,
    else the mean z-scores).

    `epsilon_of(best)`: the near-best epsilon of a dataset whose best raw score is `best`.
    """
    parts = prior_parts(train_scores, higher_is_better, prior_goodness, dataset_features,
                        target)
    return posterior_of(parts, higher_is_better, epsilon_of, prior_share)


def posterior_of(
    parts: PriorParts, higher_is_better: bool, epsilon_of: Callable[[float], float],
    prior_share: float = PRIOR_SHARE,
) -> ScorePosterior:
    """The prior whose mean is `prior_share` x M&C's ranking + the rest x the baseline
    view of `parts`. Callers that also fit the share on the same parts (the sequential
    protocol, the decisions benchmark) build them once and pass them here."""
    mean = parts.baseline
    if parts.ranking is not None:
        mean = prior_share * parts.ranking + (1.0 - prior_share) * parts.baseline
    cov = parts.covariance + LEVEL_VARIANCE + NUGGET * np.eye(len(parts.models))
    return ScorePosterior(parts.models, mean, cov, parts.scale, higher_is_better, epsilon_of,
                          parts.typical_best, parts.baseline_kind)


def share_terms(parts: PriorParts, truth: pd.Series, higher_is_better: bool) -> pd.DataFrame:
    """Per model with a true score, its two least-squares terms for the prior share
    (columns `share_num`, `share_den`; empty without a ranking or two true scores).

    With the dataset's true scores standardised (as each training row is) and every
    vector centred over these models (the level is free), the share w minimising
    |t - (w r + (1 - w) a)|^2 (t: true z-scores, r: M&C's ranking, a: the baseline
    view) is sum <t - a, r - a> / sum |r - a|^2: summing the terms over the
    leave-one-out folds of other datasets fits the share on them (`fit_prior_share`).
    """
    truth = oriented(truth.astype(float), higher_is_better).reindex(parts.models)
    known = truth.notna().to_numpy()
    if parts.ranking is None or known.sum() < 2 or not truth.std() > 0:
        return pd.DataFrame(columns=list(SHARE_COLUMNS), dtype=float)
    t = truth.to_numpy()[known] / truth.std()
    r, a = parts.ranking[known], parts.baseline[known]
    t, r, a = (v - v.mean() for v in (t, r, a))
    index = pd.Index(np.asarray(parts.models)[known], name="model")
    return pd.DataFrame({"share_num": (r - a) * (t - a), "share_den": (r - a) ** 2}, index=index)


def fit_prior_share(terms: Iterable[pd.DataFrame]) -> float:
    """The prior share that fits the leave-one-out folds whose `share_terms` are given,
    clipped to [0, 1]; `PRIOR_SHARE` when they cannot tell (none, or M&C's ranking
    never differs from the baseline view)."""
    frames = [t for t in terms if len(t)]
    den = float(sum(t["share_den"].sum() for t in frames))
    if not den > 0:
        return PRIOR_SHARE
    return float(np.clip(sum(t["share_num"].sum() for t in frames) / den, 0.0, 1.0))


def _rank_profile(z: np.ndarray) -> np.ndarray:
    """The mean z-score of the r-th best model over the rows (r = 0, 1, ...), over the
    rows that have an r-th model."""
    rows = [np.sort(row[~np.isnan(row)])[::-1] for row in z]
    length = max(len(row) for row in rows)
    return np.array([np.mean([row[r] for row in rows if r < len(row)]) for r in range(length)])


def _revealed_z(post: ScorePosterior, revealed: Mapping[str, float]) -> pd.Series:
    known = pd.Series({m: float(v) for m, v in revealed.items() if m in post.models}, dtype=float)
    return oriented(known, post.higher_is_better) / post.scale


def conditioned(
    post: ScorePosterior, revealed: Mapping[str, float]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The untried models, their posterior mean and covariance (z units) given the
    revealed raw scores (model -> score; models outside the posterior are ignored)."""
    y = _revealed_z(post, revealed)
    index = {m: i for i, m in enumerate(post.models)}
    rest = [i for m, i in index.items() if m not in y.index]
    if y.empty:
        return [post.models[i] for i in rest], post.mean[rest], post.cov[np.ix_(rest, rest)]
    seen = [index[m] for m in y.index]
    gain = np.linalg.solve(post.cov[np.ix_(seen, seen)], post.cov[np.ix_(seen, rest)])
    mean = post.mean[rest] + gain.T @ (y.to_numpy() - post.mean[seen])
    cov = post.cov[np.ix_(rest, rest)] - post.cov[np.ix_(rest, seen)] @ gain
    return [post.models[i] for i in rest], mean, (cov + cov.T) / 2


def expected_scores(post: ScorePosterior, revealed: Mapping[str, float]) -> pd.DataFrame:
    """Each untried model's posterior mean and standard deviation in the KB's own score
    unit (columns `expected_score`, `expected_score_sd`); NaN before any reveal, when
    the new dataset's level is unknown and only the order means something."""
    models, mean, cov = conditioned(post, revealed)
    sign = 1.0 if post.higher_is_better else -1.0
    frame = pd.DataFrame({"expected_score": sign * post.scale * mean,
                          "expected_score_sd": post.scale * np.sqrt(np.maximum(np.diag(cov), 0))},
                         index=models)
    return frame if len(_revealed_z(post, revealed)) else frame * np.nan


def next_scores(post: ScorePosterior, revealed: Mapping[str, float]) -> pd.Series:
    """Each untried model's score for the next pick (higher = fine-tune it sooner): the
    prior mean before any reveal, then the expected improvement over the best so far."""
    models, mean, cov = conditioned(post, revealed)
    y = _revealed_z(post, revealed)
    if y.empty:
        return pd.Series(mean, index=models)
    sd = np.sqrt(np.maximum(np.diag(cov), 1e-12))
    lift = (mean - y.max()) / sd
    improvement = (mean - y.max()) * norm.cdf(lift) + sd * norm.pdf(lift)
    return pd.Series(improvement + TIE_BREAK * mean, index=models)


def near_best(
    post: ScorePosterior, revealed: Mapping[str, float], samples: int = SAMPLES, seed: int = 0
) -> tuple[pd.Series, float]:
    """Each model's posterior probability of being within epsilon of the new dataset's
    best (tried models included), and the probability that a tried model is (0 when
    none is tried). Monte Carlo with a fixed seed, so a call is reproducible."""
    models, mean, cov = conditioned(post, revealed)
    y = _revealed_z(post, revealed)
    draws = np.empty((samples, 0))  # every model tried: nothing to draw
    if models:
        draws = np.random.default_rng(seed).multivariate_normal(mean, cov, samples, method="eigh")
    values = np.hstack([draws, np.tile(y.to_numpy(), (samples, 1))])
    sign = 1.0 if post.higher_is_better else -1.0
    raw_best = float(y.max()) * post.scale * sign if len(y) else post.typical_best
    epsilon = 0.0 if np.isnan(raw_best) else post.epsilon_of(raw_best) / post.scale
    near = values >= values.max(axis=1, keepdims=True) - epsilon
    probability = pd.Series(_share(near.sum(axis=0), samples), index=[*models, *y.index])
    tried = float(_share(near[:, len(models):].any(axis=1).sum(), samples)) if len(y) else 0.0
    return probability.reindex(post.models), tried


def _share(hits, samples: int):
    """A Monte Carlo probability by Laplace's rule, (k + 1) / (n + 2): finitely many
    draws never claim certainty (a stop probability of 1 means "never stop early")."""
    return (np.asarray(hits, dtype=float) + 1.0) / (samples + 2.0)
