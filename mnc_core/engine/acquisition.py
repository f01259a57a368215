"""Which (model, dataset) pair to fine-tune next for the knowledge base (`mnc acquire`).

The fine-tunings a team runs anyway can be chosen to make later recommendations
better. What a recommendation needs from the knowledge base is, for each dataset,
which models are good on it: a KB dataset whose best model was never fine-tuned
teaches the ranker (and the graph) a wrong top. So a missing pair is worth what its
result is expected to add to the best model known for its dataset.

The expected gain of a missing pair (m, d) comes from the sequential update
(`engine.sequential`, collaborative form: no M&C prior, so proposing costs no fit).
The other datasets of the KB are scenarios of how d ranks the models, weighted by
how well they agree with d's known scores. In each scenario j, goodness G_j (1 =
best, from normalised ranks) and the gain of m is how far m would lift d's best
known model: `max(0, G_j[m] - G_j[best known on d])`; the expected gain is the
posterior mean over scenarios. A dataset with no known score has no floor: its gain
is the posterior mean goodness, so the datasets the KB knows nothing of come first.
Gains are in goodness units (1 = from the worst model of a scenario to its best).

Batches: `propose(n)` takes the n largest gains, at most `per_dataset` pairs per
dataset per batch (default: n spread evenly over the datasets that have
candidates), because the second pair of a dataset is judged against the same floor
as the first: the first pair's result changes it.

Simulation (`simulate`): hide all but `start_share` of the KB's edges (seeded),
then acquire batches by the policy and by random choice from the hidden edges,
evaluating after each batch a leave-one-dataset-out on the acquired edges against
the full KB's truth (regret@1, fine-tunings to near-best: `engine.decisions`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mnc_core.engine import sequential as seq

log = logging.getLogger(__name__)

DEFAULT_START_SHARE = 0.3  # the simulation's starting share of the KB's edges
DEFAULT_BATCH_SHARE = 0.05  # each simulated batch: this share of the KB's edges
POLICIES = ("policy", "random")
Pair = tuple[str, str]  # (model, dataset)
# A caller's own policy for `simulate` (a benchmark's oracle): (hidden edges, batch
# size) -> the index of the hidden edges to acquire next.
BatchChooser = Callable[[pd.DataFrame, int], pd.Index]


def score_table(edges: pd.DataFrame, models: Sequence[str], datasets: Sequence[str]
                ) -> pd.DataFrame:
    """dataset x model scores of the known edges (NaN = not fine-tuned)."""
    known = edges.dropna(subset=["score"])
    table = known.pivot_table(index="dataset", columns="model", values="score", aggfunc="mean")
    return table.reindex(index=list(datasets), columns=list(models)).astype(float)


def acquisition_gains(
    scores: pd.DataFrame,
    higher_is_better: bool,
    candidates: Iterable[Pair] | None = None,
) -> pd.DataFrame:
    """Expected gain of every candidate pair (default: every missing pair of `scores`).

    `scores`: dataset x model (NaN = unknown). Returns columns model, dataset,
    expected_gain, mean_goodness (the posterior mean goodness, which breaks ties),
    known (the dataset's known scores), largest gain first.
    """
    wanted: dict[str, set[str]] | None = None
    if candidates is not None:
        wanted = {}
        for model, dataset in candidates:
            wanted.setdefault(dataset, set()).add(model)
    rows = []
    for dataset in scores.index:
        revealed = scores.loc[dataset].dropna()
        missing = [m for m in scores.columns if m not in revealed.index]
        if wanted is not None:
            missing = [m for m in missing if m in wanted.get(dataset, ())]
        if not missing:
            continue
        gain, mean = _gains(scores.drop(index=dataset), revealed, higher_is_better)
        for model in missing:
            rows.append((str(model), str(dataset), float(gain[model]), float(mean[model]),
                         len(revealed)))
    table = pd.DataFrame(rows, columns=["model", "dataset", "expected_gain", "mean_goodness",
                                        "known"])
    # Near-ties (often: no scenario of any weight lifts the floor) go to the model the
    # scenarios rate higher: the same 1e-6 share of the mean as `sequential.next_scores`.
    priority = table["expected_gain"] + 1e-6 * table["mean_goodness"]
    order = table.assign(priority=priority).sort_values(
        ["priority", "dataset", "model"], ascending=[False, True, True], kind="stable")
    return order.drop(columns="priority").reset_index(drop=True)


def _gains(others: pd.DataFrame, revealed: pd.Series, higher_is_better: bool
           ) -> tuple[pd.Series, pd.Series]:
    """Per model: expected lift of the dataset's best known model, and the posterior
    mean goodness, over the scenarios `others` weighted by the `revealed` scores."""
    if not others.notna().to_numpy().any():  # nothing to learn from: all alike
        flat = pd.Series(0.5, index=others.columns)
        return flat, flat
    scenarios = seq.build_scenarios(others, higher_is_better)
    return seq.posterior_gains(scenarios, revealed.to_dict(), higher_is_better, gain="ei")


def propose(gains: pd.DataFrame, n: int, per_dataset: int | None = None) -> pd.DataFrame:
    """The next `n` pairs: largest gains first, at most `per_dataset` per dataset.

    Default `per_dataset`: n spread evenly over the datasets with candidates (rounded
    up), so one batch does not spend itself on one dataset against a stale floor.
    """
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if gains.empty:
        return gains
    limit = per_dataset or math.ceil(n / gains["dataset"].nunique())
    rank_in_dataset = gains.groupby("dataset").cumcount()
    chosen = gains[rank_in_dataset < limit].head(n)
    if len(chosen) < n:  # fewer datasets than the spread allows: fill from the rest
        rest = gains.drop(index=chosen.index).head(n - len(chosen))
        chosen = pd.concat([chosen, rest])
    return chosen.reset_index(drop=True)


def propose_for_kb(kb, n: int, per_dataset: int | None = None) -> pd.DataFrame:
    """`mnc acquire`: the KB's next `n` pairs to fine-tune, with their expected gain."""
    scores = score_table(kb.edges, kb.models, kb.datasets)
    gains = acquisition_gains(scores, kb.higher_is_better)
    return propose(gains, n, per_dataset)


# ---------------------------------------------------------------- simulation

def start_edges(edges: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """The simulation's starting knowledge: a seeded random `share` of the edges."""
    if not 0 < share < 1:
        raise ValueError(f"start share must be in (0, 1), got {share}")
    known = edges.dropna(subset=["score"])
    rng = np.random.default_rng([seed, 30_000])
    keep = rng.choice(len(known), size=max(1, round(share * len(known))), replace=False)
    return known.iloc[np.sort(keep)]


def evaluate_knowledge(kb, acquired: pd.DataFrame, targets: Sequence[str], method: str,
                       settings=None, seed: int = 0) -> dict:
    """Leave-one-dataset-out on the `acquired` edges, judged by the full KB's truth.

    Each target's fold trains on the acquired edges of the other datasets; its truth
    is its every edge in `kb`. `method`: `mnc` (M&C, one fit per fold) or `overall`
    (mean normalised rank, no fit). Returns mean regret@1, fine-tunings to near-best
    and their per-dataset values.
    """
    from mnc_core.engine.baselines import overall_goodness
    from mnc_core.engine.decisions import decision_metrics, target_terms
    from mnc_core.engine.inputs import BOTH
    from mnc_core.engine.predict import Fold, fold_train_scores, predict_folds

    folds = []
    for target in targets:
        known = pd.concat([acquired[acquired["dataset"] != target],
                           kb.edges[kb.edges["dataset"] == target]])
        fold = Fold(key=f"acq-{target}", target=target, known_edges=known)
        if fold.has_training_scores():
            folds.append(fold)
    if method == "mnc":
        predicted = predict_folds(kb, folds, settings, seed, {"mnc": BOTH})["mnc"]
        goodness = {f.key: predicted[f.key].goodness for f in folds}
    elif method == "overall":
        goodness = {f.key: overall_goodness(fold_train_scores(kb, f), kb.higher_is_better)
                    for f in folds}
    else:
        raise ValueError(f"unknown evaluation method {method!r} (mnc or overall)")
    per_dataset = {}
    for fold in folds:
        truth = fold.target_edges().set_index("model")["score"].dropna().astype(float)
        epsilon, costs = target_terms(kb, fold.target, truth)
        row = decision_metrics(goodness[fold.key], truth, kb.higher_is_better, epsilon, costs)
        per_dataset[fold.target] = {"regret@1": row["regret@1"],
                                    "fine_tunings_to_near_best": row["fine_tunings_to_near_best"]}
    mean = {k: float(np.mean([r[k] for r in per_dataset.values()])) if per_dataset else None
            for k in ("regret@1", "fine_tunings_to_near_best")}
    return {**mean, "per_dataset": per_dataset}


def simulate(
    kb,
    seed: int = 0,
    start_share: float = DEFAULT_START_SHARE,
    batch_share: float = DEFAULT_BATCH_SHARE,
    method: str = "mnc",
    targets: Sequence[str] | None = None,
    settings=None,
    policies: Sequence[str] = POLICIES,
    max_share: float = 1.0,
    choosers: Mapping[str, BatchChooser] | None = None,
) -> dict:
    """Acquire the hidden edges in batches by each policy; evaluate after each batch.

    `choosers`: extra policies by name, simulated after `policies` the same way.
    Returns `dense` (evaluation on every edge), `start` (edge count), `batch` and per
    policy a `curve` of {edges, share, regret@1, fine_tunings_to_near_best} (the first
    point is the starting knowledge) and `edges_to_dense`: the edges acquired when the
    regret@1 first reaches the dense KB's (None if it never does).
    """
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown acquisition policy {unknown[0]!r} ({', '.join(POLICIES)})")
    every = kb.edges.dropna(subset=["score"])
    targets = list(targets or kb.datasets)
    batch = max(1, round(batch_share * len(every)))
    start = start_edges(every, start_share, seed)
    dense = evaluate_knowledge(kb, every, targets, method, settings, seed)
    first = evaluate_knowledge(kb, start, targets, method, settings, seed)
    log.info("acquisition: %d of %d edges to start, batches of %d; dense regret@1 %.4f, "
             "start %.4f", len(start), len(every), batch, dense["regret@1"], first["regret@1"])
    out = {"edges": len(every), "start": len(start), "batch": batch, "method": method,
           "seed": seed, "targets": targets, "dense": dense, "policies": {}}
    choosers = dict(choosers or {})
    for policy in [*policies, *choosers]:
        acquired = start
        curve = [_point(first, 0, len(acquired), len(every))]
        rng = np.random.default_rng([seed, 31_000])
        while len(acquired) < len(every) * max_share - 1e-9:
            hidden = every.drop(index=acquired.index)
            if policy in choosers:
                take = hidden.loc[choosers[policy](hidden, min(batch, len(hidden)))]
            elif policy == "random":
                take = hidden.iloc[rng.choice(len(hidden), size=min(batch, len(hidden)),
                                              replace=False)]
            else:
                scores = score_table(acquired, kb.models, kb.datasets)
                pool = list(zip(hidden["model"], hidden["dataset"], strict=True))
                chosen = propose(acquisition_gains(scores, kb.higher_is_better, pool),
                                 min(batch, len(hidden)))
                wanted = set(zip(chosen["model"], chosen["dataset"], strict=True))
                take = hidden[[p in wanted for p in pool]]
            acquired = pd.concat([acquired, take])
            point = evaluate_knowledge(kb, acquired, targets, method, settings, seed)
            curve.append(_point(point, len(acquired) - len(start), len(acquired), len(every)))
            log.info("acquisition %s: %d edges, regret@1 %.4f, fine-tunings %.2f", policy,
                     len(acquired), point["regret@1"], point["fine_tunings_to_near_best"])
        out["policies"][policy] = {"curve": curve,
                                   "edges_to_dense": edges_to_reach(curve, dense["regret@1"])}
    return out


def _point(evaluation: dict, acquired: int, edges: int, total: int) -> dict:
    return {"acquired": acquired, "edges": edges, "share": edges / total,
            "regret@1": evaluation["regret@1"],
            "fine_tunings_to_near_best": evaluation["fine_tunings_to_near_best"]}


def edges_to_reach(curve: Sequence[dict], target: float, slack: float = 1e-12) -> int | None:
    """Acquired edges at the first point of `curve` whose regret@1 is <= `target`."""
    for point in curve:
        if point["regret@1"] is not None and point["regret@1"] <= target + slack:
            return int(point["acquired"])
    return None
