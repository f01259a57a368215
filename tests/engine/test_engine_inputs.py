"""Ranker inputs: the training record, neighbour ranks and the score-before input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine.inputs import (
    BOTH,
    FEATURES_ONLY,
    class_count,
    pair_inputs,
    rank_classes,
    training_set,
)
from mnc_core.engine.predict import Fold, fold_context


def _context(kb, target, with_before: bool):
    context = fold_context(kb, Fold(key="f", target=target, known_edges=kb.edges), None)
    if not with_before:
        return context
    before = kb.edges.pivot(index="dataset", columns="model", values="score_before")
    return replace(context, before_scores=before)


def test_before_rank_is_the_targets_rank_by_score_before(small_kb):
    target = small_kb.datasets[1]
    context = _context(small_kb, target, with_before=True)
    rows = pair_inputs(context, target, FEATURES_ONLY)
    before = small_kb.edges[small_kb.edges["dataset"] == target].set_index("model")
    before = before["score_before"].reindex(small_kb.models)
    # lower is better in the small KB: the lowest score before ranks 0, the highest 1
    assert rows["model:before_rank"].idxmin() == before.idxmin()
    assert rows["model:before_rank"].idxmax() == before.idxmax()
    assert rows["model:before_rank"].max() == pytest.approx(1.0)
    expected_order = before.sort_values().index.tolist()
    assert rows["model:before_rank"].sort_values().index.tolist() == expected_order


def test_no_before_input_without_scores_before(small_kb, kb_factory):
    target = small_kb.datasets[0]
    assert "model:before_rank" not in pair_inputs(_context(small_kb, target, False), target, BOTH)
    no_before = kb_factory(with_before=False)
    context = _context(no_before, target, with_before=True)  # all NaN: no such input
    assert not context.has_before()
    assert "model:before_rank" not in pair_inputs(context, target, FEATURES_ONLY)


def test_unknown_before_scores_are_nan_and_columns_match_training(small_kb):
    target = small_kb.datasets[0]
    context = _context(small_kb, target, with_before=True)
    holes = context.before_scores.copy()
    holes.loc[target, small_kb.models[0]] = np.nan
    holes.loc[small_kb.datasets[2]] = np.nan  # a training dataset with none known
    context = replace(context, before_scores=holes)
    rows = pair_inputs(context, target, FEATURES_ONLY)
    assert np.isnan(rows.loc[small_kb.models[0], "model:before_rank"])
    assert rows["model:before_rank"].drop(small_kb.models[0]).notna().all()
    inputs, targets = training_set(context, FEATURES_ONLY, class_count(context.train_scores))
    assert list(inputs.columns) == list(rows.columns)
    unknown = inputs.loc[(targets["dataset"] == small_kb.datasets[2]).to_numpy()]
    assert unknown["model:before_rank"].isna().all()


def test_training_record_leaves_out_the_row_dataset(small_kb):
    target = small_kb.datasets[0]
    context = _context(small_kb, target, with_before=False)
    inputs, targets = training_set(context, FEATURES_ONLY, class_count(context.train_scores))
    assert target not in set(targets["dataset"])
    first = small_kb.datasets[1]
    rows = inputs.loc[(targets["dataset"] == first).to_numpy(), "model:overall_rank"]
    others = context.train_ranks().drop(index=first).mean(axis=0)
    np.testing.assert_allclose(rows.to_numpy(), others.loc[rows.index].to_numpy())
    with_own = context.train_ranks().mean(axis=0).loc[rows.index].to_numpy()
    assert not np.allclose(rows.to_numpy(), with_own)


def test_rank_classes_bucket_normalised_ranks():
    ranks = pd.Series([0.0, 0.26, 0.4, 0.74, 1.0])
    assert rank_classes(ranks, 5).tolist() == [0, 1, 2, 3, 4]
    assert rank_classes(ranks, 2).tolist() == [0, 0, 0, 1, 1]


def test_before_input_does_not_leak_the_targets_fine_tuned_scores(small_kb, fast_settings):
    from mnc_core.engine.predict import fit_and_predict

    target = small_kb.datasets[0]
    poisoned = small_kb.edges.copy()
    rows = poisoned["dataset"] == target
    poisoned.loc[rows, "score"] = 1000.0 - 10 * poisoned.loc[rows, "score"]
    goodness = []
    for edges in (small_kb.edges, poisoned):
        kb = replace(small_kb, edges=edges)
        context = _context(kb, target, with_before=True)
        assert context.has_before()
        prediction = fit_and_predict(context, target, FEATURES_ONLY, fast_settings, seed=0)
        goodness.append(prediction.goodness)
    pd.testing.assert_series_equal(goodness[0], goodness[1])
