"""The cached walk kernel draws exactly pecanpy's node2vec+ walks (pecanpy is the reference).

Each case is one pecanpy `SparseOTF` graph (one numba compile of pecanpy's closure,
~5 s): the first holds several components at once (weighted, equal weights, a star,
a triangle-rich one, isolated nodes), the second non-default p, q and gamma.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest


def _pecanpy_graph(edges, isolated, p, q, gamma, seed):
    from pecanpy.graph import AdjlstGraph
    from pecanpy.pecanpy import SparseOTF

    adjacency = AdjlstGraph()
    for a, b, _ in edges:
        adjacency.add_node(a)
        adjacency.add_node(b)
    for name in isolated:
        adjacency.add_node(name)
    for a, b, weight in edges:
        adjacency.add_edge(a, b, weight, False)
    return SparseOTF.from_adjlst_graph(
        adjacency, p=p, q=q, workers=1, extend=True, gamma=gamma, random_state=seed
    )


def _components(rng: np.random.Generator):
    """Weighted random graph, equal-weight ring, star, dense clique with noise weights."""
    edges = []
    for a in range(14):
        for b in range(a + 1, 14):
            if rng.random() < 0.35:
                edges.append((f"r{a}", f"r{b}", float(rng.uniform(1e-6, 1.0))))
    edges += [(f"c{i}", f"c{(i + 1) % 7}", 1.0) for i in range(7)]
    edges += [("hub", f"leaf{i}", float(0.1 + i)) for i in range(5)]
    edges += [(f"k{a}", f"k{b}", float(rng.choice([0.05, 1.0])))
              for a in range(6) for b in range(a + 1, 6)]
    return edges


def _reference_walks(graph, starts, walk_length, seed):
    """pecanpy's own compiled walk loop and step closure, on one numba thread."""
    import numba
    from numba_progress import ProgressBar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        move_forward = graph.get_move_forward()
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with ProgressBar(total=starts.size, disable=True) as progress:
            return graph._random_walks(starts.size, walk_length, seed, starts,
                                       graph.get_has_nbrs(), move_forward, progress)
    finally:
        numba.set_num_threads(threads)


@pytest.mark.parametrize(
    ("p", "q", "gamma", "seed"),
    [(1.0, 1.0, 0.0, 0), (0.5, 2.0, 0.5, 12345)],
)
def test_kernel_walks_are_identical_to_pecanpys(p, q, gamma, seed):
    from mnc_core.engine.walk_kernel import node2vec_plus_walks

    rng = np.random.default_rng(seed)
    graph = _pecanpy_graph(_components(rng), ["alone-1", "alone-2"], p, q, gamma, seed)
    starts = np.concatenate([np.arange(graph.num_nodes, dtype=np.uint32)] * 8)
    starts = starts[rng.permutation(starts.size)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        thresholds = graph.get_noise_thresholds()

    mine = node2vec_plus_walks(graph.indptr, graph.indices, graph.data, thresholds,
                               graph.p, graph.q, seed, starts, 15)
    reference = _reference_walks(graph, starts, 15, seed)

    np.testing.assert_array_equal(mine, reference)
    isolated = [graph.nodes.index(n) for n in ("alone-1", "alone-2")]
    lengths = mine[np.isin(starts, isolated), -1]
    assert lengths.size and (lengths == 1).all()  # isolated starts stay put
    assert (mine[:, -1] == 16).sum() > 0.9 * starts.size  # the rest walk the full length
