"""Leave-one-out without leaks, prediction for new datasets, baselines, sparsity."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine.inputs import BOTH, FEATURES_ONLY, GRAPH_ONLY
from mnc_core.engine.predict import Fold, predict_folds, rank_new_dataset
from mnc_core.engine.protocols import drop_edges, leave_one_out, sparsity_sweep
from mnc_core.engine.rankers import RANKERS

VARIANTS = {"mnc": BOTH, "features": FEATURES_ONLY, "graph": GRAPH_ONLY}


def _poison(kb, dataset):
    """The same KB with `dataset`'s fine-tuning scores reversed and inflated."""
    edges = kb.edges.copy()
    rows = edges["dataset"] == dataset
    edges.loc[rows, "score"] = 1000.0 - 10 * edges.loc[rows, "score"]
    return replace(kb, edges=edges)


def test_held_out_scores_do_not_leak(small_kb, fast_settings):
    target, other = small_kb.datasets[0], small_kb.datasets[2]
    # three worlds in one run (one Node2Vec+ compile): clean, the held-out dataset's
    # scores poisoned, a training dataset's scores poisoned
    worlds = {
        "clean": small_kb.edges,
        "poisoned-target": _poison(small_kb, target).edges,
        "poisoned-training": _poison(small_kb, other).edges,
    }
    folds = [Fold(key=k, target=target, known_edges=e) for k, e in worlds.items()]
    out = predict_folds(small_kb, folds, fast_settings, seed=1, variants=VARIANTS)
    for name in VARIANTS:
        pd.testing.assert_series_equal(
            out[name]["clean"].goodness, out[name]["poisoned-target"].goodness
        )
    # control: poisoning a training dataset does change the predictions, so the
    # equality above is not vacuous
    assert any(
        not np.allclose(
            out[n]["clean"].goodness.to_numpy(), out[n]["poisoned-training"].goodness.to_numpy()
        )
        for n in VARIANTS
    )


def test_leave_one_out_scores_every_method(small_kb, fast_settings):
    result = leave_one_out(small_kb, fast_settings, seed=0)
    methods = result["methods"]
    assert set(methods) == {
        "mnc", "mnc-features-only", "mnc-graph-only", "overall", "initial", "direct", "random"
    }
    for summary in methods.values():
        assert set(summary["per_dataset"]) == set(small_kb.datasets)
        mean = summary["mean"]
        assert 0 <= mean["osr"] <= 1 and -1 <= mean["wtau"] <= 1 and mean["o2o"] >= 0
        assert 0 < mean["top1"] <= 1
    # the family structure is learnable from the other datasets: M&C must beat random
    assert methods["mnc"]["mean"]["wtau"] > methods["random"]["mean"]["wtau"]
    assert methods["mnc"]["mean"]["o2o"] < methods["random"]["mean"]["o2o"]


def test_targets_restrict_and_unknown_target_is_refused(small_kb, fast_settings):
    chosen = small_kb.datasets[:2]
    result = leave_one_out(small_kb, fast_settings, targets=chosen)
    assert set(result["methods"]["mnc"]["per_dataset"]) == set(chosen)
    with pytest.raises(KeyError, match="no-such-set"):
        leave_one_out(small_kb, fast_settings, targets=["no-such-set"])


def test_initial_and_direct_not_applicable(kb_factory, fast_settings):
    kb = kb_factory(with_before=False)
    kb = replace(kb, dataset_features=kb.dataset_features.iloc[:, 0:0])
    result = leave_one_out(kb, fast_settings, targets=kb.datasets[:2])
    for name in ("initial", "direct"):
        assert all(v is None for v in result["methods"][name]["mean"].values())
    assert result["methods"]["overall"]["mean"]["osr"] is not None


def test_rank_dataset_without_model_edges(small_kb, fast_settings):
    new = small_kb.datasets[3]
    kb = replace(small_kb, edges=small_kb.edges[small_kb.edges["dataset"] != new])
    table = rank_new_dataset(kb, new, fast_settings)
    assert sorted(table["rank"]) == list(range(1, len(kb.models) + 1))
    assert set(table.index) == set(kb.models)
    assert table["known_score"].isna().all()
    assert table["confidence"].between(0, 1).all()
    assert table["goodness"].is_monotonic_decreasing
    with pytest.raises(KeyError):
        rank_new_dataset(kb, "not-there", fast_settings)


@pytest.mark.parametrize("ranker", sorted(RANKERS))
def test_every_ranker_ranks_every_model(small_kb, fast_settings, ranker):
    target = small_kb.datasets[1]
    folds = [Fold(key="f", target=target, known_edges=small_kb.edges)]
    settings = replace(fast_settings, ranker=ranker)
    table = predict_folds(small_kb, folds, settings, variants={"f": FEATURES_ONLY})["f"]["f"].table
    assert sorted(table["rank"]) == list(range(1, len(small_kb.models) + 1))
    # family B datasets (odd index) favour model-4 over model-0 by a wide margin (8 FID)
    assert table.loc["model-4", "rank"] < table.loc["model-0", "rank"]


def test_drop_edges_share_and_seed(small_kb):
    kept = drop_edges(small_kb.edges, 0.3, seed=0)
    assert len(kept) == len(small_kb.edges) - round(0.3 * len(small_kb.edges))
    assert kept.index.equals(drop_edges(small_kb.edges, 0.3, seed=0).index)
    assert not kept.index.equals(drop_edges(small_kb.edges, 0.3, seed=1).index)
    with pytest.raises(ValueError):
        drop_edges(small_kb.edges, 1.0, seed=0)


def test_sparsity_sweep_counts_skipped(small_kb, fast_settings):
    result = sparsity_sweep(small_kb, fast_settings, levels=(0.2, 0.9), n_seeds=2)
    levels = result["levels"]
    assert set(levels) == {"0.2", "0.9"}
    for row in levels.values():
        assert row["evaluated"] + row["skipped"] == 2 * len(small_kb.datasets)
    # 90 % of 40 edges dropped leaves 4: most datasets cannot be evaluated
    assert levels["0.9"]["skipped"] > levels["0.2"]["skipped"]
    assert levels["0.2"]["mnc"]["mean"]["osr"] is not None


def test_random_baseline_draws_new_orderings_for_each_fold():
    from mnc_core.engine.baselines import RANDOM_SEEDS, random_orderings

    models = [f"m{i}" for i in range(10)]
    first = random_orderings(models, 0, "loo-a")
    assert len(first) == RANDOM_SEEDS
    again = random_orderings(models, 0, "loo-a")
    other_fold = random_orderings(models, 0, "loo-b")
    other_seed = random_orderings(models, 1, "loo-a")
    for one, same in zip(first, again, strict=True):
        assert sorted(one) == list(range(10))  # a permutation
        assert one.equals(same)  # reproducible
    # the orderings (and so the "picked" models) differ between folds and seeds
    assert [o.idxmax() for o in first] != [o.idxmax() for o in other_fold]
    assert [list(o) for o in first] != [list(o) for o in other_seed]
