"""M&C's sequential update (`engine.score_posterior`): what the prior says before any
reveal, how a revealed score moves the models that co-vary with it, the expected
improvement rule, the near-best probabilities and the orientation of FID-like KBs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine import score_posterior as sp
from mnc_core.engine import sequential as seq

RNG = np.random.default_rng(0)
# Twelve training datasets: models a and b rise and fall together, c the other way,
# d is flat in the middle (accuracy, higher is better).
SWING = RNG.normal(size=12)
TRAIN = pd.DataFrame({
    "a": 0.6 + 0.1 * SWING + RNG.normal(scale=0.01, size=12),
    "b": 0.6 + 0.1 * SWING + RNG.normal(scale=0.01, size=12),
    "c": 0.6 - 0.1 * SWING + RNG.normal(scale=0.01, size=12),
    "d": 0.6 + RNG.normal(scale=0.01, size=12),
}, index=[f"t{k}" for k in range(12)])
PRIOR = pd.Series({"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.9})  # M&C: d first


def _epsilon(best):
    return 0.005


def _posterior(train=TRAIN, prior=PRIOR, higher_is_better=True, share=sp.PRIOR_SHARE):
    return sp.build_posterior(train, higher_is_better, _epsilon, prior, share)


def test_first_pick_is_the_prior_mean_and_the_share_mixes_in_the_mean_z_scores():
    assert sp.next_scores(_posterior(share=1.0), {}).idxmax() == "d"
    flat = sp.next_scores(_posterior(share=0.0), {})  # each model's mean z-score only
    z = TRAIN.sub(TRAIN.mean(axis=1), axis=0).div(TRAIN.std(axis=1), axis=0)
    assert flat.idxmax() == z.mean().idxmax()


def test_a_revealed_score_moves_the_models_that_vary_with_it():
    post = _posterior()
    # One reveal mostly tells the new dataset's level; two tell how a does against d.
    for value, riser, sinker in ((0.9, "b", "c"), (0.3, "c", "b")):  # a above / below d
        models, mean, cov = sp.conditioned(post, {"d": 0.6, "a": value})
        after = pd.Series(mean, index=models)
        assert models == ["b", "c"]
        assert after[riser] > after[sinker] + 1.0  # in z units: a clear call
        assert np.all(np.diag(cov) < np.diag(post.cov)[1:3])  # a reveal never adds doubt


def test_the_next_pick_after_a_poor_first_one_is_the_model_that_varies_the_other_way():
    truth = pd.Series({"a": 0.3, "b": 0.31, "c": 0.9, "d": 0.6})
    post = _posterior(share=1.0)
    order = seq.sequential_order(lambda r: sp.next_scores(post, r), post.models, truth)
    assert order[0] == "d"  # the prior's top
    assert sorted(order) == ["a", "b", "c", "d"]
    scores = sp.next_scores(post, {"d": 0.6, "a": 0.3})
    assert scores.idxmax() == "c" and scores["c"] > 10 * scores["b"]


def test_near_best_probabilities():
    post = _posterior()
    probability, tried = sp.near_best(post, {})
    assert tried == 0.0 and list(probability.index) == post.models
    assert probability.between(0, 1, inclusive="neither").all()
    assert probability.sum() >= 1.0  # at least one near-best model per draw
    far_ahead = {"d": 0.6, "a": 5.0}  # a far above d: above anything plausible
    probability, tried = sp.near_best(post, far_ahead)
    assert tried > 0.999 and probability["a"] > 0.999
    assert tried < 1.0  # finitely many draws never claim certainty
    assert probability.drop("a").max() < 0.01
    again, _ = sp.near_best(post, far_ahead)
    assert again.equals(probability)  # a fixed seed: reproducible


def test_every_model_tried():
    post = _posterior()
    everything = {"a": 0.5, "b": 0.7, "c": 0.6, "d": 0.6}
    assert sp.next_scores(post, everything).empty
    probability, tried = sp.near_best(post, everything)
    assert tried > 0.999  # the best tried is the best
    assert probability["b"] > 0.999 and probability["a"] < 0.001


def test_lower_is_better_is_the_mirror_of_higher_is_better():
    up = _posterior(train=TRAIN, higher_is_better=True)
    down = _posterior(train=-TRAIN, higher_is_better=False)
    assert np.allclose(up.mean, down.mean) and np.allclose(up.cov, down.cov)
    a = sp.next_scores(up, {"d": 0.6, "a": 0.3})
    b = sp.next_scores(down, {"d": -0.6, "a": -0.3})
    assert np.allclose(a.to_numpy(), b.to_numpy())
    # expected scores come back in each KB's own unit and direction
    high = sp.expected_scores(up, {"d": 0.6, "a": 0.3})
    low = sp.expected_scores(down, {"d": -0.6, "a": -0.3})
    assert np.allclose(high["expected_score"], -low["expected_score"])
    assert np.allclose(high["expected_score_sd"], low["expected_score_sd"])


def test_expected_scores_are_unknown_before_a_reveal_and_in_score_units_after():
    post = _posterior()
    assert sp.expected_scores(post, {}).isna().all().all()
    after = sp.expected_scores(post, {"d": 0.6, "a": 0.7})
    # b moves with a (to about 0.7), c against it (below the flat d), in accuracy units
    assert abs(after.at["b", "expected_score"] - 0.7) < 0.05
    assert after.at["c", "expected_score"] < 0.6
    assert (after["expected_score_sd"] > 0).all()


def test_no_usable_training_dataset_falls_back_to_the_prior_order():
    train = pd.DataFrame({"a": [1.0], "b": [np.nan]}, index=["only"])  # one score: no spread
    post = sp.build_posterior(train, True, _epsilon, pd.Series({"a": 0.2, "b": 0.8}))
    assert post.scale == 1.0
    assert sp.next_scores(post, {}).idxmax() in {"a", "b"}
    models, mean, _ = sp.conditioned(post, {"b": 0.5})
    assert models == ["a"] and np.isfinite(mean).all()


def _squared_error(parts, truths, share):
    """The documented criterion itself: the squared error between each dataset's
    standardised, centred true scores and the centred prior mean with this share."""
    total = 0.0
    for truth in truths:
        t = truth.reindex(parts.models).to_numpy(dtype=float)
        t = t / np.std(t, ddof=1)
        mean = share * parts.ranking + (1 - share) * parts.average
        total += float(np.sum(((t - t.mean()) - (mean - mean.mean())) ** 2))
    return total


def test_the_prior_share_is_the_least_squares_fit_on_the_given_folds():
    """`fit_prior_share` over `share_terms` minimises the squared error of the prior mean
    against the true z-scores (checked against a grid search), pooled over datasets,
    clipped to [0, 1]; the default when nothing can tell."""
    parts = sp.prior_parts(TRAIN, True, PRIOR)
    assert parts.ranking is not None and not np.allclose(parts.ranking, parts.average)
    grid = np.linspace(0.0, 1.0, 2001)
    rng = np.random.default_rng(1)
    for _ in range(5):
        truths = [pd.Series(0.5 + 0.1 * rng.normal(size=4), index=parts.models)
                  for _ in range(3)]
        fitted = sp.fit_prior_share([sp.share_terms(parts, t, True) for t in truths])
        best = grid[np.argmin([_squared_error(parts, truths, w) for w in grid])]
        assert fitted == pytest.approx(best, abs=1e-3)
        # an FID-like KB: the same scores negated, lower is better, the same share
        flipped = [sp.share_terms(parts, -t, False) for t in truths]
        assert sp.fit_prior_share(flipped) == pytest.approx(fitted)
    # the prior mean of build_posterior is this very mix of the parts
    np.testing.assert_allclose(sp.build_posterior(TRAIN, True, _epsilon, PRIOR, 0.3).mean,
                               0.3 * parts.ranking + 0.7 * parts.average)
    ranking_like = pd.Series(parts.ranking, index=parts.models)
    assert sp.fit_prior_share([sp.share_terms(parts, ranking_like, True)]) == 1.0
    against = pd.Series(-parts.ranking, index=parts.models)  # M&C exactly wrong
    assert sp.fit_prior_share([sp.share_terms(parts, against, True)]) == 0.0
    assert sp.fit_prior_share([]) == sp.PRIOR_SHARE
    assert sp.share_terms(parts, pd.Series({"a": 0.5}), True).empty  # one score: no spread


# Sixteen training datasets whose feature x says which of a and b does better (c flat):
# the baseline view regresses the z-scores on the features.
X = np.linspace(-2.0, 2.0, 16)
SIDED = pd.DataFrame({"a": 0.6 + 0.1 * X, "b": 0.6 - 0.1 * X, "c": 0.6 + 0.0 * X},
                     index=[f"s{k}" for k in range(16)])
SIDED = SIDED + RNG.normal(scale=0.005, size=SIDED.shape)
FEATURES = pd.DataFrame({"x": [*X, 1.5, -1.5], "noise": RNG.normal(size=18)},
                        index=[*SIDED.index, "new-a", "new-b"])
BLIND = pd.Series({"a": 0.5, "b": 0.5, "c": 0.9})  # M&C: c first, a and b alike


def test_the_baseline_view_is_the_features_regression_and_the_mean_z_without_them():
    for target, best, worst in (("new-a", "a", "b"), ("new-b", "b", "a")):
        parts = sp.prior_parts(SIDED, True, BLIND, FEATURES, target)
        baseline = pd.Series(parts.baseline, index=parts.models)
        assert baseline.idxmax() == best and baseline.idxmin() == worst
        assert baseline[best] - baseline[worst] > 1.5  # z units: x = 1.5 is far from 0
        assert parts.baseline_kind == sp.REGRESSION_BASELINE
        # share 0: the prior is the regression alone, its first pick the side x is on
        post = sp.build_posterior(SIDED, True, _epsilon, BLIND, 0.0, FEATURES, target)
        assert sp.next_scores(post, {}).idxmax() == best
        # M&C's ranking (c first) is wrong here: the fitted share leaves it out
        truth = pd.Series({best: 0.75, worst: 0.45, "c": 0.6})
        assert sp.fit_prior_share([sp.share_terms(parts, truth, True)]) == 0.0
    plain = sp.prior_parts(SIDED, True, BLIND)
    np.testing.assert_allclose(plain.baseline, plain.average)
    assert plain.baseline_kind == sp.MEAN_BASELINE
    # where the regression cannot fit: the mean z-scores, the same as without features
    for features, target in ((FEATURES, "absent"), (FEATURES.iloc[[0, 1, 16]], "new-a"),
                             (FEATURES.iloc[:, :0], "new-a")):
        parts = sp.prior_parts(SIDED, True, BLIND, features, target)
        np.testing.assert_allclose(parts.baseline, plain.average)
        assert parts.baseline_kind == sp.MEAN_BASELINE
        post = sp.build_posterior(SIDED, True, _epsilon, BLIND, 0.5, features, target)
        assert post.baseline_kind == sp.MEAN_BASELINE
    # a feature the target lacks is left out; the others still predict
    gap = FEATURES.copy()
    gap.loc["new-a", "noise"] = np.nan
    parts = sp.prior_parts(SIDED, True, BLIND, gap, "new-a")
    assert pd.Series(parts.baseline, index=parts.models).idxmax() == "a"


def test_uninformative_features_give_back_about_the_mean_z_scores():
    """Features unrelated to the scores: leave-one-out picks a large penalty, and the
    regression predicts each model's mean z-score (nearly: not a confident wrong call)."""
    noise = pd.DataFrame(np.random.default_rng(3).normal(size=(13, 3)),
                         index=[*TRAIN.index, "new"], columns=["u", "v", "w"])
    parts = sp.prior_parts(TRAIN, True, PRIOR, noise, "new")
    spread = np.ptp(parts.average)
    assert np.abs(parts.baseline - parts.average).max() < 0.25 * spread
