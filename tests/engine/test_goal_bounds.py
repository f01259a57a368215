"""The oracles of benchmarks/engine_goal_bounds.py: the best rank a weighting of the
training datasets can give a model, and the oracle acquisition's batch order."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "engine_goal_bounds.py"
spec = importlib.util.spec_from_file_location("engine_goal_bounds", SCRIPT)
bounds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bounds)


def test_a_model_first_only_under_negative_weights():
    # "best" is worst on both datasets: every similarity weighting ranks it last, but
    # weighting both datasets by -1 puts it first
    z = pd.DataFrame({"a": [1.0, 0.5, -1.0], "b": [-1.0, 0.5, -1.0]},
                     index=["x", "y", "best"])
    assert bounds.best_linear_rank(z, "best", nonnegative=True)[0] == 3
    rank, weights = bounds.best_linear_rank(z, "best", nonnegative=False)
    assert rank == 1 and all(w < 0 for w in weights)


def test_similarity_weighting_finds_the_dataset_that_ranks_the_model_first():
    z = pd.DataFrame({"a": [1.0, 0.0, 0.9], "b": [0.0, 1.0, 0.8]}, index=["x", "y", "best"])
    # neither dataset alone ranks "best" first, an even mix does (0.85 vs 0.5)
    rank, weights = bounds.best_linear_rank(z, "best", nonnegative=True)
    assert rank == 1 and min(weights) > 0 and abs(sum(weights) - 1) < 1e-6


def test_ties_count_against_the_best():
    z = pd.DataFrame({"a": [1.0, 1.0]}, index=["twin", "best"])
    assert bounds.best_linear_rank(z, "best", nonnegative=True)[0] == 2


def test_oracle_batch_takes_each_datasets_best_first():
    hidden = pd.DataFrame({"model": list("abcabc"), "dataset": ["d1"] * 3 + ["d2"] * 3,
                           "score": [3.0, 1.0, 2.0, 10.0, 30.0, 20.0]})
    # higher is better: d2's best (b, 30), d1's best (a, 3), then the second bests
    assert list(bounds.oracle_batch(hidden, 3, True)) == [4, 0, 5]
    # lower is better (FID): each dataset's lowest first
    assert list(bounds.oracle_batch(hidden, 2, False)) == [1, 3]
