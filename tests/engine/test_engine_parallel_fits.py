"""Ranker fits spread over processes give exactly the in-process predictions."""

import pandas as pd

from mnc_core.engine.inputs import BOTH, FEATURES_ONLY
from mnc_core.engine.predict import Fold, predict_folds


def test_predictions_do_not_depend_on_worker_processes(small_kb, fast_settings):
    folds = [
        Fold(key=f"f{i}", target=dataset, known_edges=small_kb.edges)
        for i, dataset in enumerate(small_kb.datasets[:3])
    ]
    variants = {"mnc": BOTH, "features": FEATURES_ONLY}
    serial = predict_folds(small_kb, folds, fast_settings, seed=3, variants=variants, workers=1)
    spread = predict_folds(small_kb, folds, fast_settings, seed=3, variants=variants, workers=2)
    assert set(spread) == set(variants)
    for name in variants:
        assert set(spread[name]) == {f.key for f in folds}
        for key, prediction in serial[name].items():
            pd.testing.assert_frame_equal(prediction.table, spread[name][key].table)
