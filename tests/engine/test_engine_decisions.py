"""Decision metrics against hand-computed values; Random's exact expectations against
brute-force enumeration of every ordering of a small zoo."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine.decisions import (
    DECISION_METRIC_NAMES,
    SPREAD_KEYS,
    decision_metrics,
    mean_decisions,
    near_best_epsilon,
    order_decisions,
    order_of,
    random_decision_metrics,
)


def test_accuracy_hand_computed():
    # accuracy fractions: a is best (0.90); the order is c, b, a, d.
    true = pd.Series({"a": 0.90, "b": 0.897, "c": 0.80, "d": 0.70})
    predicted = pd.Series({"a": 2.0, "b": 3.0, "c": 4.0, "d": 1.0, "unscored": 9.0})
    costs = pd.Series({"a": 1.0, "b": 2.0, "c": 4.0, "d": 8.0, "unscored": 16.0})
    row = decision_metrics(predicted, true, True, epsilon=0.005, costs=costs)
    assert row["regret@1"] == pytest.approx(0.10)  # 0.90 - 0.80
    assert row["regret@3"] == pytest.approx(0.0)  # a is third
    assert row["regret@5"] == pytest.approx(0.0)
    assert (row["hit@1"], row["hit@3"], row["hit@5"]) == (0.0, 1.0, 1.0)
    # b (0.897) is within half a point of 0.90: the second fine-tuning is near-best
    assert row["fine_tunings_to_near_best"] == 2.0
    assert row["gpu_hours_to_near_best"] == pytest.approx(4.0 + 2.0)  # c then b
    assert set(row) == set(DECISION_METRIC_NAMES)


def test_fid_hand_computed_lower_is_better():
    true = pd.Series({"a": 10.0, "b": 10.05, "c": 12.0, "d": 20.0})
    predicted = pd.Series({"a": 0.0, "b": 1.0, "c": 3.0, "d": 2.0})  # order c, d, b, a
    epsilon = near_best_epsilon("clip_fid", False, best=10.0)
    assert epsilon == pytest.approx(0.1)  # 1 % of the best FID
    row = decision_metrics(predicted, true, False, epsilon)
    assert row["regret@1"] == pytest.approx(2.0)  # 12 - 10
    assert row["regret@3"] == pytest.approx(0.05)  # best of c, d, b is 10.05
    assert row["hit@3"] == 0.0 and row["hit@5"] == 1.0
    assert row["fine_tunings_to_near_best"] == 3.0  # b is within 0.1
    assert row["gpu_hours_to_near_best"] is None  # no costs


def test_epsilon_follows_the_metric_scale():
    assert near_best_epsilon("eval_accuracy", True, 0.9) == pytest.approx(0.005)
    assert near_best_epsilon("oracle_accuracy", True, 90.0) == pytest.approx(0.5)
    # a name that allows both scales: the scores decide
    assert near_best_epsilon("accuracy", True, 0.9, [0.5, 0.9]) == pytest.approx(0.005)
    assert near_best_epsilon("accuracy", True, 90.0, [50.0, 90.0]) == pytest.approx(0.5)
    assert near_best_epsilon("fid", False, 20.0) == pytest.approx(0.2)


def test_ties_and_order():
    # tied predictions keep the given order; NaN goodness goes last
    assert order_of(pd.Series({"x": 1.0, "y": np.nan, "z": 1.0, "w": 2.0})) == ["w", "x", "z", "y"]
    true = pd.Series({"a": 1.0, "b": 1.0, "c": 0.0})
    row = order_decisions(["b", "c", "a"], true, True, epsilon=0.0)
    assert row["hit@1"] == 1.0 and row["regret@1"] == 0.0  # a tied best counts
    assert row["fine_tunings_to_near_best"] == 1.0


def test_one_scored_model_and_none():
    row = order_decisions(["a", "b"], pd.Series({"a": 3.0, "b": np.nan}), True, 0.0)
    assert row["regret@5"] == 0.0 and row["fine_tunings_to_near_best"] == 1.0
    assert all(v is None for v in order_decisions(["a"], pd.Series({"b": 1.0}), True, 0.0).values())
    assert all(v is None for v in decision_metrics(None, pd.Series({"a": 1.0}), True, 0.0).values())


def _brute_force(true, higher_is_better, epsilon, costs):
    rows = [order_decisions(list(p), true, higher_is_better, epsilon, costs)
            for p in itertools.permutations(true.index)]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_random_is_the_exact_expectation_over_all_orderings(higher_is_better):
    rng = np.random.default_rng(3)
    models = [f"m{k}" for k in range(6)]
    true = pd.Series(rng.uniform(10, 20, size=6).round(1), index=models)
    true.iloc[2] = true.max() if higher_is_better else true.min()  # a tied best
    costs = pd.Series(rng.uniform(0.5, 3, size=6), index=models)
    epsilon = 1.5
    exact = random_decision_metrics(true, higher_is_better, epsilon, costs)
    brute = _brute_force(true, higher_is_better, epsilon, costs)
    for key, value in brute.items():
        assert exact[key] == pytest.approx(value, abs=1e-12), key


def test_random_closed_forms_by_hand():
    true = pd.Series({"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0})  # higher is better
    row = random_decision_metrics(true, True, epsilon=1.0)  # near-best: a, b
    # best of one random pick: mean 2.5 -> regret 1.5; of three: (4*3 + 3*1) / 4 = 3.75
    assert row["regret@1"] == pytest.approx(1.5)
    assert row["regret@3"] == pytest.approx(0.25)
    assert row["hit@1"] == pytest.approx(0.25) and row["hit@3"] == pytest.approx(0.75)
    assert row["fine_tunings_to_near_best"] == pytest.approx(5 / 3)  # (n + 1) / (m + 1)
    assert row["regret@5"] == 0.0 and row["hit@5"] == 1.0  # k beyond the zoo: all of it


def test_mean_decisions_spread():
    rows = [{"fine_tunings_to_near_best": v, "regret@1": 0.1} for v in (1.0, 2.0, 9.0)]
    rows.append({"fine_tunings_to_near_best": None, "regret@1": None})
    out = mean_decisions(rows)
    assert out["fine_tunings_to_near_best"] == pytest.approx(4.0)
    assert out[SPREAD_KEYS[0]] == 2.0 and out[SPREAD_KEYS[1]] == 9.0
    assert out["regret@1"] == pytest.approx(0.1)
