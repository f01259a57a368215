"""Auxiliary results (another fine-tuning recipe) are extra training tasks, never the target's."""

from dataclasses import replace

import numpy as np
import pandas as pd

from mnc_core.engine.inputs import BOTH, class_count, pair_inputs, training_set
from mnc_core.engine.predict import Fold, fold_context, predict_folds


def _with_aux(kb, seed: int = 1):
    """The KB's edges again as recipe `lora`, scores shifted and reordered a little."""
    rng = np.random.default_rng(seed)
    aux = kb.edges[["model", "dataset", "score"]].copy()
    aux["score"] = aux["score"] + rng.normal(scale=1.0, size=len(aux)) + 3.0
    aux["recipe"] = "lora"
    return replace(kb, aux_edges=aux[["model", "dataset", "recipe", "score"]])


def _goodness(kb, target, settings):
    fold = Fold(key="f", target=target, known_edges=kb.edges)
    return predict_folds(kb, [fold], settings, seed=3, workers=1)["mnc"]["f"].goodness


def test_the_targets_auxiliary_results_never_reach_its_prediction(small_kb, fast_settings):
    kb = _with_aux(small_kb)
    target = kb.datasets[0]
    aux = kb.aux_edges.copy()
    rows = aux["dataset"] == target
    aux.loc[rows, "score"] = aux.loc[rows, "score"].to_numpy()[::-1] * 9.0
    poisoned = replace(kb, aux_edges=aux)
    pd.testing.assert_series_equal(
        _goodness(kb, target, fast_settings), _goodness(poisoned, target, fast_settings)
    )


def test_other_datasets_auxiliary_results_change_the_prediction(small_kb, fast_settings):
    kb = _with_aux(small_kb)
    target = kb.datasets[0]
    assert not _goodness(kb, target, fast_settings).equals(
        _goodness(small_kb, target, fast_settings)
    )


def test_auxiliary_tasks_are_training_rows_flagged_by_recipe(small_kb):
    kb = _with_aux(small_kb)
    target = kb.datasets[0]
    context = fold_context(kb, Fold(key="f", target=target, known_edges=kb.edges), None)
    assert target not in context.aux_scores["lora"].index
    inputs, targets = training_set(context, BOTH, class_count(context.train_scores))
    aux_rows = targets["dataset"].str.endswith("@lora").to_numpy()
    n_training = len(kb.datasets) - 1
    assert aux_rows.sum() == n_training * len(kb.models)
    assert (~aux_rows).sum() == n_training * len(kb.models)
    assert (inputs.loc[aux_rows, "task:lora"] == 1.0).all()
    assert (inputs.loc[~aux_rows, "task:lora"] == 0.0).all()
    predicted = pair_inputs(context, target, BOTH)
    assert (predicted["task:lora"] == 0.0).all()
    assert list(predicted.columns) == list(inputs.columns)


def test_auxiliary_record_of_a_training_row_leaves_out_its_own_dataset(small_kb):
    kb = _with_aux(small_kb)
    target, other = kb.datasets[0], kb.datasets[1]
    context = fold_context(kb, Fold(key="f", target=target, known_edges=kb.edges), None)
    inputs, targets = training_set(context, BOTH, class_count(context.train_scores))
    rows = (targets["dataset"] == other).to_numpy()
    aux = kb.aux_score_matrices()["lora"].drop(index=[target, other])
    ranks = aux.rank(axis=1).sub(1).div(aux.notna().sum(axis=1) - 1, axis=0).mean()
    expected = ranks.loc[targets.index[rows]].to_numpy()
    np.testing.assert_allclose(inputs.loc[rows, "model:overall_rank@lora"], expected)


def test_a_kb_without_auxiliary_results_has_no_task_columns(small_kb):
    target = small_kb.datasets[0]
    context = fold_context(small_kb, Fold(key="f", target=target, known_edges=small_kb.edges), None)
    columns = pair_inputs(context, target, BOTH).columns
    assert not [c for c in columns if c.startswith("task:") or "@" in c]
