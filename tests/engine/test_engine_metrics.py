"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mnc_core.engine.metrics import (
    dataset_metrics,
    mean_metrics,
    normalised_ranks,
    overall_best_model,
)


def test_lower_is_better_hand_computed():
    # FID: a is truly best (10); the method ranks b first; c is the overall best.
    true = pd.Series({"a": 10.0, "b": 12.0, "c": 15.0, "d": 20.0})
    predicted = pd.Series({"a": 3.0, "b": 4.0, "c": 2.0, "d": 1.0})
    row = dataset_metrics(predicted, true, higher_is_better=False, overall_best="c")
    assert row["osr"] == 0.0
    assert row["o2o"] == pytest.approx(2.0)  # 12 - 10
    assert row["o2b"] == pytest.approx(-3.0)  # 12 - 15: better than the overall best
    assert row["top1"] == pytest.approx(10 / 12)
    # Pearson of [3, 4, 2, 1] with [-10, -12, -15, -20], by hand: 14.5 / sqrt(5 * 56.75)
    assert row["pearson"] == pytest.approx(14.5 / math.sqrt(5 * 56.75))


def test_higher_is_better_hand_computed():
    true = pd.Series({"a": 0.9, "b": 0.8, "c": 0.7})
    predicted = pd.Series({"a": 0.0, "b": 1.0, "c": 0.5, "unscored": 9.0})
    row = dataset_metrics(predicted, true, higher_is_better=True, overall_best="c")
    # "unscored" has no true score: it is ignored, so b is the predicted best.
    assert row["osr"] == 0.0
    assert row["o2o"] == pytest.approx(0.1)
    assert row["o2b"] == pytest.approx(-0.1)
    assert row["top1"] == pytest.approx(0.8 / 0.9)


def test_perfect_and_reversed_orderings():
    fid = pd.Series({"a": 5.0, "b": 7.0, "c": 9.0, "d": 11.0, "e": 13.0})
    perfect = dataset_metrics(-fid, fid, higher_is_better=False, overall_best="b")
    assert perfect["osr"] == 1.0
    assert perfect["o2o"] == 0.0
    assert perfect["top1"] == 1.0
    assert perfect["o2b"] == pytest.approx(-2.0)  # 5 - 7
    assert perfect["wtau"] == pytest.approx(1.0)
    assert perfect["pearson"] == pytest.approx(1.0)
    reversed_ = dataset_metrics(fid, fid, higher_is_better=False, overall_best="b")
    assert reversed_["osr"] == 0.0
    assert reversed_["o2o"] == pytest.approx(8.0)
    assert reversed_["wtau"] == pytest.approx(-1.0)


def test_tied_best_counts_as_optimal():
    true = pd.Series({"a": 1.0, "b": 1.0, "c": 3.0})
    predicted = pd.Series({"a": 0.0, "b": 1.0, "c": 0.5})
    assert dataset_metrics(predicted, true, True, None)["osr"] == 0.0
    assert dataset_metrics(predicted, true, False, None)["osr"] == 1.0


def test_not_applicable_metrics_are_none():
    single = dataset_metrics(pd.Series({"a": 1.0}), pd.Series({"a": 2.0}), False, "zz")
    assert single["osr"] == 1.0
    assert single["wtau"] is None and single["pearson"] is None
    assert single["o2b"] is None  # the reference model has no score here
    none_known = dataset_metrics(pd.Series({"a": 1.0}), pd.Series({"b": 2.0}), False, "a")
    assert all(v is None for v in none_known.values())


def test_mean_skips_nulls():
    rows = [{"osr": 1.0, "wtau": None}, {"osr": 0.0, "wtau": 0.5}]
    mean = mean_metrics([{**dict.fromkeys(["o2b", "o2o", "top1", "pearson"]), **r} for r in rows])
    assert mean["osr"] == 0.5
    assert mean["wtau"] == 0.5
    assert mean["o2b"] is None


def test_normalised_ranks_and_overall_best():
    scores = pd.DataFrame(
        {"a": [1.0, 5.0, None], "b": [2.0, 1.0, 3.0], "c": [3.0, 2.0, 1.0]},
        index=["d1", "d2", "d3"],
    )
    ranks = normalised_ranks(scores, higher_is_better=False)
    assert ranks.loc["d1"].tolist() == [0.0, 0.5, 1.0]
    assert ranks.loc["d2"].tolist() == [1.0, 0.0, 0.5]
    assert ranks.loc["d3", "b"] == 1.0 and ranks.loc["d3", "c"] == 0.0
    # mean ranks (lower is better): a 0.5, b 0.5, c 0.5 -> tie; make c clearly best
    scores.loc["d1", "c"] = 0.5
    assert overall_best_model(scores, higher_is_better=False) == "c"
    assert overall_best_model(scores, higher_is_better=True) != "c"
