"""One training set per fold, sliced per variant: the same inputs and predictions as
building each variant's own (every group on: auxiliary tasks, score before, graph)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine.embedding import embed_graphs
from mnc_core.engine.inputs import (
    BOTH,
    FEATURES_ONLY,
    GRAPH_ONLY,
    InputGroups,
    class_count,
    group_columns,
    pair_inputs,
    training_set,
    union_groups,
)
from mnc_core.engine.predict import Fold, fit_and_predict, fold_context, fold_graph, predict_folds

SEED = 3
VARIANTS = {
    "mnc": BOTH,
    "features": FEATURES_ONLY,
    "graph": GRAPH_ONLY,
    "model-only": InputGroups(dataset=False, graph=False),
    "dataset+graph": InputGroups(model=False),
}


@pytest.fixture
def rich(small_kb, fast_settings):
    """A fold seeing every input group: auxiliary recipe, scores before, node vectors."""
    rng = np.random.default_rng(1)
    aux = small_kb.edges[["model", "dataset", "score"]].copy()
    aux["score"] = aux["score"] + rng.normal(scale=1.0, size=len(aux))
    aux["recipe"] = "lora"
    kb = replace(small_kb, aux_edges=aux[["model", "dataset", "recipe", "score"]])
    fold = Fold(key="f", target=kb.datasets[0], known_edges=kb.edges)
    vectors = embed_graphs({"f": fold_graph(kb, fold)}, fast_settings.node2vec, SEED)["f"]
    context = fold_context(kb, fold, vectors, use_score_before=True)
    return kb, fold, context


def test_variant_inputs_are_column_slices_of_the_full_table(rich):
    _, fold, context = rich
    n_classes = class_count(context.train_scores)
    full, full_targets = training_set(context, BOTH, n_classes)
    query = pair_inputs(context, fold.target, BOTH)
    assert any(c.startswith("task:") for c in full.columns)
    assert "model:before_rank" in full.columns
    for groups in VARIANTS.values():
        own, own_targets = training_set(context, groups, n_classes)
        columns = group_columns(full.columns, groups)
        pd.testing.assert_frame_equal(full[columns], own)
        pd.testing.assert_frame_equal(full_targets, own_targets)
        pd.testing.assert_frame_equal(
            query[columns], pair_inputs(context, fold.target, groups)
        )


def test_union_of_groups():
    assert union_groups([FEATURES_ONLY, GRAPH_ONLY]) == BOTH
    assert union_groups([FEATURES_ONLY]) == FEATURES_ONLY


def test_predictions_of_all_variants_at_once_equal_one_variant_at_a_time(rich, fast_settings):
    kb, fold, context = rich
    settings = replace(fast_settings, use_score_before=True)
    together = predict_folds(kb, [fold], settings, seed=SEED, variants=VARIANTS,
                             workers=1)
    for name, groups in VARIANTS.items():
        alone = fit_and_predict(context, fold.target, groups, settings, seed=SEED)
        pd.testing.assert_frame_equal(together[name]["f"].table, alone.table)
