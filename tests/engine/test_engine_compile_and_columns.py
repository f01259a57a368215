"""Speed measures that must not change results: kernel cache and distinct split columns."""

import pandas as pd

from mnc_core.engine.embedding import enable_kernel_cache
from mnc_core.engine.predict import split_distinct_columns


def test_columns_ordering_rows_alike_are_dropped_first_kept():
    features = pd.DataFrame(
        {
            "params": [1.0, 2.0, 3.0],
            "log_params": [0.0, 0.69, 1.1],  # same order as params
            "minus_params": [-1.0, -2.0, -3.0],  # reversed order: same splits
            "is_unet": [1.0, 0.0, 1.0],
            "is_transformer": [0.0, 1.0, 0.0],  # complement of is_unet
            "steps": [50.0, 50.0, 28.0],
        },
        index=["a", "b", "c"],
    )
    kept = split_distinct_columns(features)
    assert list(kept.columns) == ["params", "is_unet", "steps"]
    pd.testing.assert_frame_equal(kept, features[["params", "is_unet", "steps"]])


def test_pecanpy_module_kernels_get_numba_disk_cache():
    from numba.core.caching import NullCache
    from pecanpy.rw.sparse_rw import SparseRWGraph, isnotin_extended

    assert enable_kernel_cache() >= 5
    for kernel in (isnotin_extended, SparseRWGraph.get_extended_normalized_probs):
        assert not isinstance(kernel._cache, NullCache)
