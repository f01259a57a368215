"""Sparse and signed knowledge bases: folds with nothing to learn, constant targets,
sparsity level labels, negative scores."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from mnc_core.engine.graph import score_similarity
from mnc_core.engine.inputs import FEATURES_ONLY
from mnc_core.engine.metrics import dataset_metrics
from mnc_core.engine.predict import Fold, predict_folds, rank_new_dataset
from mnc_core.engine.protocols import leave_one_out, sparsity_sweep
from mnc_core.engine.rankers import RANKERS


def _only_on(kb, datasets: set[str], models_per_dataset: int | None = None):
    """The KB with model edges kept on `datasets` only (the first N models of each)."""
    edges = kb.edges[kb.edges["dataset"].isin(datasets)]
    if models_per_dataset is not None:
        edges = edges.groupby("dataset").head(models_per_dataset)
    return replace(kb, edges=edges.reset_index(drop=True))


def test_fold_without_training_scores_is_skipped_not_fatal(small_kb, fast_settings):
    # one dataset holds every score: its fold has nothing to learn from, the others
    # have no score to evaluate
    only = small_kb.datasets[0]
    kb = _only_on(small_kb, {only})
    result = leave_one_out(kb, fast_settings, variants={"mnc": FEATURES_ONLY})
    assert result["skipped"] == small_kb.datasets
    assert result["methods"]["mnc"]["per_dataset"] == {}


def test_loo_skips_only_the_fold_with_nothing_to_learn(small_kb, fast_settings):
    # two datasets with scores: each fold learns from the other, so both are evaluated
    two = set(small_kb.datasets[:2])
    result = leave_one_out(_only_on(small_kb, two), fast_settings,
                           variants={"mnc": FEATURES_ONLY})
    assert set(result["methods"]["mnc"]["per_dataset"]) == two
    assert set(result["skipped"]) == set(small_kb.datasets) - two


def test_rank_with_nothing_to_learn_names_the_dataset(small_kb, fast_settings):
    only = small_kb.datasets[0]
    with pytest.raises(ValueError, match=f"cannot rank models for '{only}'"):
        rank_new_dataset(_only_on(small_kb, {only}), only, fast_settings)


def test_rank_refuses_a_tie_learned_from_constant_targets(small_kb, fast_settings):
    # one known score in the whole KB, on another dataset: every training row is
    # "rank 0", so the ranker can only tie every model; say so rather than print a ranking
    target, other = small_kb.datasets[:2]
    kb = _only_on(small_kb, {other}, models_per_dataset=1)
    with pytest.raises(ValueError, match=f"cannot rank models for '{target}'.*every model ties"):
        rank_new_dataset(kb, target, fast_settings)


@pytest.mark.parametrize("ranker", sorted(RANKERS))
def test_every_ranker_predicts_a_tie_from_constant_targets(small_kb, fast_settings, ranker):
    # every training dataset knows one model: every training target is "rank 0"
    kb = _only_on(small_kb, set(small_kb.datasets[1:]), models_per_dataset=1)
    kb = replace(kb, edges=pd.concat([kb.edges, small_kb.edges[
        small_kb.edges["dataset"] == small_kb.datasets[0]]]))
    fold = Fold(key="f", target=small_kb.datasets[0], known_edges=kb.edges)
    settings = replace(fast_settings, ranker=ranker)
    table = predict_folds(kb, [fold], settings, variants={"f": FEATURES_ONLY})["f"]["f"].table
    assert (table["goodness"] == 0).all()
    assert table["confidence"].isna().all()  # nothing learned: no confidence to claim
    assert sorted(table["rank"]) == list(range(1, len(kb.models) + 1))


def test_sparsity_levels_keep_their_own_labels(small_kb, fast_settings):
    result = sparsity_sweep(small_kb, fast_settings, levels=(0.05, 0.1, 0.25), n_seeds=1)
    assert list(result["levels"]) == ["0.05", "0.1", "0.25"]
    for row in result["levels"].values():
        assert row["evaluated"] + row["skipped"] == len(small_kb.datasets)
    assert result["skipped"] == []


@pytest.mark.parametrize("levels", [(0.1, 0.1), (0.5, 1.0), ()])
def test_sparsity_refuses_repeated_or_out_of_range_levels(small_kb, fast_settings, levels):
    with pytest.raises(ValueError, match="sparsity level"):
        sparsity_sweep(small_kb, fast_settings, levels=levels, n_seeds=1)


def test_top1_is_null_for_signed_scores():
    # higher is better: picking -2 when -1 is best would give a "ratio" of 2
    true = pd.Series({"m1": -2.0, "m2": -1.0})
    row = dataset_metrics(pd.Series({"m1": 1.0, "m2": 0.0}), true, True, None)
    assert row["osr"] == 0.0
    assert row["top1"] is None
    assert row["o2o"] == pytest.approx(1.0)


def test_negative_lower_is_better_scores_keep_their_order_in_the_graph():
    edges = pd.DataFrame({"dataset": ["x", "x", "x"], "score": [-30.0, -20.0, -10.0]})
    weights = score_similarity(edges, higher_is_better=False)
    assert weights.iloc[0] == pytest.approx(1.0)  # the best (lowest) edge weighs 1
    assert weights.iloc[0] > weights.iloc[1] > weights.iloc[2] > 0
