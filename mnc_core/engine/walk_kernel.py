"""Node2Vec+ walks with ONE numba kernel compiled once and kept in numba's disk cache.

Why: pecanpy builds its walk step (`move_forward`) as a closure over each graph's
arrays, so numba compiles the step and the whole walk loop again for every new graph
object (4-5 s each, 8-14 s the first time in a process). A long-running process that
ranks new datasets (a Dagster run worker or sensor) met a new graph on every call.
Here the graph's CSR arrays are *arguments* of a module-level `@njit(cache=True)`
function: compiled once per argument types, then loaded from disk in any process.

The walk is pecanpy's, step for step, on `SparseOTF` with node2vec+ (`extend=True`):
the same first-order first step, the same second-order transition probabilities
(pecanpy's own `get_extended_normalized_probs`, called, not copied), the same
`cumsum` / `searchsorted` draw, and the same seeding (`np.random.seed(seed)`, what
pecanpy's kernel does on one thread, thread id 0). So the walks are identical to
pecanpy's for the same seed; pecanpy stays the reference and a test compares them.

Cache validity: numba keys the cache on this file's source and modification time, and
on argument types. The pecanpy functions called here are compiled into the cached
code; pecanpy is pinned by `uv.lock`, and an upgrade must re-run the identity test.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pecanpy.rw.sparse_rw import SparseRWGraph

_node2vec_plus_probs = SparseRWGraph.get_extended_normalized_probs


@njit(cache=True, nogil=True)
def node2vec_plus_walks(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    noise_thresholds: np.ndarray,
    p: float,
    q: float,
    seed: int,
    starts: np.ndarray,
    walk_length: int,
) -> np.ndarray:
    """Walk index matrix in pecanpy's layout: row i is the walk from `starts[i]`.

    Shape `(len(starts), walk_length + 2)`; the last entry of a row is its effective
    length (1 for a start without neighbours), entries beyond it are 0.
    """
    np.random.seed(seed)
    n_walks = starts.size
    walks = np.zeros((n_walks, walk_length + 2), dtype=np.uint32)
    walks[:, 0] = starts
    walks[:, -1] = walk_length + 1
    for i in range(n_walks):
        start = walks[i, 0]
        if indptr[start] == indptr[start + 1]:
            walks[i, -1] = 1
            continue
        probs = _node2vec_plus_probs(
            data, indices, indptr, p, q, start, None, noise_thresholds
        )
        choice = np.searchsorted(np.cumsum(probs), np.random.random())
        walks[i, 1] = indices[indptr[start] + choice]
        for j in range(2, walk_length + 1):
            current = walks[i, j - 1]
            if indptr[current] == indptr[current + 1]:
                walks[i, -1] = j
                break
            previous = walks[i, j - 2]
            probs = _node2vec_plus_probs(
                data, indices, indptr, p, q, current, previous, noise_thresholds
            )
            choice = np.searchsorted(np.cumsum(probs), np.random.random())
            walks[i, j] = indices[indptr[current] + choice]
    return walks
