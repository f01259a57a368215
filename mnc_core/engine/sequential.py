"""Sequential selection: learn from each fine-tuning on the new dataset (paper section 5.3).

A team rarely fine-tunes only the first recommendation: it fine-tunes one model,
looks at its score, then decides what to fine-tune next. Each revealed score is a
known edge of the new dataset, and the ranking of the models not yet tried is
updated with it.

M&C's update (`mnc`, `mnc next`) is the Gaussian score posterior of
`engine.score_posterior`, with M&C's one-shot prediction as its prior mean. This
module runs the decision: `sequential_order` simulates it (pick, reveal the true
score, update, pick again), `next_pick` is `mnc next`.

It also holds the *collaborative* baseline, a rank *scenario* model without M&C:
every training dataset is a scenario "the new dataset ranks the models as this one
does" (its goodness row: one minus its normalised rank, 1 = best, NaN = unknown),
equally likely before any reveal. The revealed scores weigh the scenarios by how
well they agree with them, as in a Mallows-type model of pairwise order: each pair
of revealed models is ordered as the scenario orders it with probability
`1 - PAIR_NOISE`, so a scenario's weight is multiplied by `1 - PAIR_NOISE` for each
pair it orders right and by `PAIR_NOISE` for each it orders wrong (pairs it cannot
order, an unknown model or a tie, leave it unchanged). Pairs share models, so they
are not independent evidence: the pair log-likelihood is scaled by 2 / (r - 1) for r
revealed models (each model counts about once). Its next model: for the first
`EXPLOIT_PICKS` picks the untried one with the largest posterior mean goodness
`sum_j w_j G_j[m]` (with nothing revealed: Overall's first pick, the best mean
normalised rank); after that the largest posterior expected improvement over the
best model tried so far, in each scenario's own goodness:
`sum_j w_j * max(0, G_j[m] - G_j[best tried])`. The acquisition policy
(`engine.acquisition`) uses the same scenario gains, because proposing pairs over a
whole KB must not cost a fit per dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnc_core.engine import score_posterior as gaussian
from mnc_core.engine.decision_defaults import STOP_PROBABILITY
from mnc_core.engine.metrics import normalised_ranks, oriented

PAIR_NOISE = 0.1  # chance that a scenario orders a pair of revealed models wrongly
DEFAULT_STOP_PROBABILITY = STOP_PROBABILITY
# How the collaborative baseline scores the next model: "mean" (posterior mean
# goodness), "ei" (expected improvement over the best tried) or "hybrid" (mean for the
# first EXPLOIT_PICKS picks, then ei). TEMPER: each revealed model counts once, not
# once per pair it is in.
GAIN = "hybrid"
TEMPER = True
EXPLOIT_PICKS = 3


@dataclass(frozen=True)
class Scenarios:
    """Goodness rows (scenario x model, 1 = best, NaN = unknown) and their prior weights."""

    goodness: pd.DataFrame
    prior: pd.Series


def build_scenarios(train_scores: pd.DataFrame, higher_is_better: bool) -> Scenarios:
    """Scenarios from the training datasets' scores (dataset x model), equally likely."""
    rows = train_scores.dropna(how="all")
    goodness = 1.0 - normalised_ranks(rows, higher_is_better)
    prior = pd.Series(1.0 / max(len(goodness), 1), index=goodness.index)
    return Scenarios(goodness, prior)


def scenario_weights(
    scenarios: Scenarios, revealed: Mapping[str, float], higher_is_better: bool,
    pair_noise: float = PAIR_NOISE,
) -> pd.Series:
    """Posterior scenario weights given the revealed scores (model -> score)."""
    log_w = np.log(scenarios.prior.to_numpy())
    models = [m for m in revealed if m in scenarios.goodness.columns]
    if len(models) >= 2:
        truth = oriented(pd.Series({m: float(revealed[m]) for m in models}), higher_is_better)
        t = truth.to_numpy()
        g = scenarios.goodness[models].to_numpy()  # scenario x revealed
        i, j = np.triu_indices(len(models), 1)
        true_sign = np.sign(t[i] - t[j])
        row_sign = np.sign(g[:, i] - g[:, j])  # NaN where unknown
        informative = (true_sign != 0)[None, :] & (row_sign != 0) & ~np.isnan(row_sign)
        right = informative & (row_sign == true_sign[None, :])
        wrong = informative & ~right
        # Pairs share models, so they are not independent evidence: each revealed
        # model counts once (the pair log-likelihood is scaled by 2 / (r - 1)).
        temper = 2.0 / (len(models) - 1) if TEMPER else 1.0
        log_w = log_w + temper * right.sum(axis=1) * np.log(1 - pair_noise)
        log_w = log_w + temper * wrong.sum(axis=1) * np.log(pair_noise)
    weights = np.exp(log_w - log_w.max())
    return pd.Series(weights / weights.sum(), index=scenarios.goodness.index)


def posterior_gains(
    scenarios: Scenarios, revealed: Mapping[str, float], higher_is_better: bool,
    pair_noise: float = PAIR_NOISE, gain: str | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Every model's posterior gain (`gain`: "mean", "ei" or "hybrid", default `GAIN`;
    see the module docstring) and its posterior mean goodness, tried models included."""
    weights = scenario_weights(scenarios, revealed, higher_is_better, pair_noise).to_numpy()
    # An unknown goodness counts as the middle of the row (neither good nor bad).
    filled = scenarios.goodness.fillna(0.5)
    tried = [m for m in revealed if m in filled.columns]
    mode = gain or GAIN
    if mode == "hybrid":
        mode = "mean" if len(tried) < EXPLOIT_PICKS else "ei"
    mean = pd.Series(weights @ filled.to_numpy(), index=filled.columns)
    if not tried or mode != "ei":
        return mean, mean
    truth = oriented(pd.Series({m: float(revealed[m]) for m in tried}), higher_is_better)
    floor = filled[truth.idxmax()].to_numpy()[:, None]
    lift = np.maximum(0.0, filled.to_numpy() - floor)
    return pd.Series(weights @ lift, index=filled.columns), mean


def next_scores(
    scenarios: Scenarios, revealed: Mapping[str, float], higher_is_better: bool,
    pair_noise: float = PAIR_NOISE, gain: str | None = None,
) -> pd.Series:
    """Each untried model's scenario gain (higher = fine-tune it sooner)."""
    value, mean = posterior_gains(scenarios, revealed, higher_is_better, pair_noise, gain)
    # Tie-break by the posterior mean goodness (a tiny share, never above a real gain).
    scores = value + gaussian.TIE_BREAK * mean
    return scores.drop(index=[m for m in revealed if m in scores.index])


NextScores = Callable[[Mapping[str, float]], pd.Series]  # revealed -> untried model scores


def sequential_order(
    next_of: NextScores, models: list[str], truth: pd.Series, limit: int | None = None
) -> list[str]:
    """Simulate the decision: pick, reveal the true score, update, pick again.

    `next_of(revealed)` scores the untried models (higher = sooner); `models`: the
    models it knows. Candidates are the models with a known true score (`truth`, NaN =
    unknown; those it does not know come last); the order holds `limit` picks
    (default: every candidate, so that fine-tunings to near-best can be counted
    however late the near-best model comes).
    """
    known = truth.dropna().astype(float)
    candidates = [m for m in models if m in known.index]
    candidates += [m for m in known.index if m not in models]
    limit = len(candidates) if limit is None else min(limit, len(candidates))
    revealed: dict[str, float] = {}
    order: list[str] = []
    for _ in range(limit):
        scores = next_of(revealed)
        scores = scores.reindex([m for m in candidates if m not in revealed]).fillna(-np.inf)
        pick = str(scores.index[int(np.argmax(scores.to_numpy()))])
        order.append(pick)
        revealed[pick] = float(known[pick])
    return order


def sequential_fold_orders(
    train_scores: pd.DataFrame,
    truth: pd.Series,
    higher_is_better: bool,
    epsilon_of: Callable[[float], float],
    parts: gaussian.PriorParts | None,
    limit: int | None = None,
    prior_share: float = gaussian.PRIOR_SHARE,
) -> dict[str, list[str]]:
    """One fold's simulated orders: `mnc` (the Gaussian update whose prior is built
    from `parts`, the fold's `score_posterior.prior_parts` with M&C's one-shot goodness;
    absent when `parts` is None) and `collaborative` (from `train_scores` alone)."""
    out = {}
    if parts is not None:
        post = gaussian.posterior_of(parts, higher_is_better, epsilon_of, prior_share)
        out["mnc"] = sequential_order(
            lambda revealed: gaussian.next_scores(post, revealed), post.models, truth, limit)
    plain = build_scenarios(train_scores, higher_is_better)
    out["collaborative"] = sequential_order(
        lambda revealed: next_scores(plain, revealed, higher_is_better),
        list(plain.goodness.columns), truth, limit)
    return out


def next_pick(
    kb, dataset: str, settings=None, seed: int = 0, budget: int | None = None,
    stop_probability: float = DEFAULT_STOP_PROBABILITY, table: pd.DataFrame | None = None,
    prior_share: float = gaussian.PRIOR_SHARE,
) -> dict:
    """`mnc next`: the next model to fine-tune on `dataset` given its known edges.

    The one-shot M&C prediction (the dataset's own edges left out, as `mnc rank`) is
    the prior; the dataset's known edges are the revealed scores. Returns the tried
    models, the candidates best first with their score and near-best probability, the
    near-best probability of the tried set and whether to stop (that probability at
    least `stop_probability`, or `budget` fine-tunings done, or nothing left). Each
    candidate's `expected_score` (and `_sd`) is the posterior in the KB's score unit,
    null before any score is known.

    `table`: `rank_new_dataset(kb, dataset, settings, seed)`'s frame when the caller
    has it already (the platform's recommendation ranks once and reuses it here: a
    ranking is a Node2Vec+ embedding and a ranker fit); None ranks here.
    `prior_share`: M&C's share of the prior mean (the platform's: fitted on the stored
    leave-one-out calibration, `shortlist.calibrated_prior_share`); `prior_baseline`
    in the result names the view the rest of it is (`score_posterior.prior_parts`).
    """
    from mnc_core.engine.decisions import kb_epsilon
    from mnc_core.engine.predict import Fold, fold_train_scores, rank_new_dataset

    if table is None:
        table = rank_new_dataset(kb, dataset, settings, seed)
    fold = Fold(key="next", target=dataset, known_edges=kb.edges)
    revealed = fold.target_edges().set_index("model")["score"].dropna().astype(float)
    post = gaussian.build_posterior(
        fold_train_scores(kb, fold), kb.higher_is_better,
        lambda best: kb_epsilon(kb, best), table["goodness"], prior_share,
        kb.dataset_features, dataset,
    )
    tried = revealed.to_dict()
    scores = gaussian.next_scores(post, tried)
    probability, reached = gaussian.near_best(post, tried)
    expected = gaussian.expected_scores(post, tried)
    candidates = scores.sort_values(ascending=False, kind="stable")
    reasons = []
    if tried and reached >= stop_probability:
        reasons.append(f"near-best probability of the tried models {reached:.2f} "
                       f">= {stop_probability:.2f}")
    if budget is not None and len(tried) >= budget:
        reasons.append(f"budget of {budget} fine-tunings spent")
    if candidates.empty:
        reasons.append("every model is tried")
    best_tried = None
    if tried:
        best_tried = (revealed.idxmax() if kb.higher_is_better else revealed.idxmin())
    return {
        "dataset": dataset,
        "tried": [{"model": m, "score": float(s)} for m, s in revealed.items()],
        "best_tried": best_tried,
        "next": None if candidates.empty else str(candidates.index[0]),
        "candidates": [
            {"model": str(m), "score": float(v), "near_best_probability": float(probability[m]),
             **{k: _number(expected.at[m, k]) for k in expected.columns}}
            for m, v in candidates.items()
        ],
        "tried_near_best_probability": float(reached),
        "prior_share": float(prior_share),
        "prior_baseline": post.baseline_kind,
        "stop": bool(reasons),
        "stop_reasons": reasons,
    }


def _number(value: float) -> float | None:
    """A float for JSON: None for NaN."""
    return None if np.isnan(value) else float(value)
