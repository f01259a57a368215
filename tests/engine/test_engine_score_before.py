"""`use_score_before`: the target's scores before fine-tuning reach M&C only when asked."""

from dataclasses import replace

import pandas as pd

from mnc_core.engine.predict import Fold, predict_folds


def _poison_before(kb, target):
    edges = kb.edges.copy()
    rows = edges["dataset"] == target
    edges.loc[rows, "score_before"] = edges.loc[rows, "score_before"].to_numpy()[::-1] * 7.0
    return replace(kb, edges=edges)


def _goodness(kb, target, settings):
    fold = Fold(key="f", target=target, known_edges=kb.edges)
    return predict_folds(kb, [fold], settings, seed=2, workers=1)["mnc"]["f"].goodness


def test_scores_before_fine_tuning_are_an_input_only_when_asked(small_kb, fast_settings):
    target = small_kb.datasets[0]
    poisoned = _poison_before(small_kb, target)
    pd.testing.assert_series_equal(
        _goodness(small_kb, target, fast_settings), _goodness(poisoned, target, fast_settings)
    )
    asked = replace(fast_settings, use_score_before=True)
    assert not _goodness(small_kb, target, asked).equals(_goodness(poisoned, target, asked))
