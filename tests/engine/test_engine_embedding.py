"""Node2Vec+ embeddings: seeded reproducibility, fold independence, isolated nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine.embedding import Node2VecSettings, embed_graphs
from mnc_core.engine.graph import build_matching_graph, node_name

SETTINGS = Node2VecSettings(dim=8, num_walks=4, walk_length=10, window=3)


def _fold_graphs(kb):
    graphs = {}
    for dataset in kb.datasets[:3]:
        train = kb.edges[kb.edges["dataset"] != dataset]
        graphs[f"fold-{dataset}"] = build_matching_graph(
            kb.models, kb.datasets, train, kb.dataset_distances, kb.higher_is_better
        )
    return graphs


def test_seed_reproducibility_and_fold_independence(small_kb):
    graphs = _fold_graphs(small_kb)
    first = embed_graphs(graphs, SETTINGS, seed=3)
    again = embed_graphs(graphs, SETTINGS, seed=3)
    other_seed = embed_graphs(graphs, SETTINGS, seed=4)
    key = next(iter(graphs))
    alone = embed_graphs({key: graphs[key]}, SETTINGS, seed=3)
    for name in graphs:
        pd.testing.assert_frame_equal(first[name], again[name])
        assert first[name].shape == (graphs[name].number_of_nodes(), SETTINGS.dim)
        assert not np.allclose(first[name].to_numpy(), other_seed[name].to_numpy())
    # a fold's vectors do not depend on which other folds share the union run
    pd.testing.assert_frame_equal(first[key], alone[key])
    # different folds are different graphs, so different vectors
    names = list(graphs)
    assert not np.allclose(first[names[0]].to_numpy(), first[names[1]].to_numpy())


def test_isolated_node_gets_zero_vector(small_kb):
    lonely = "lonely-set"
    datasets = [*small_kb.datasets, lonely]
    graph = build_matching_graph(
        small_kb.models, datasets, small_kb.edges, small_kb.dataset_distances, False
    )
    vectors = embed_graphs({"g": graph}, SETTINGS, seed=0)["g"]
    assert np.all(vectors.loc[node_name("dataset", lonely)].to_numpy() == 0)
    connected = vectors.loc[node_name("dataset", small_kb.datasets[0])].to_numpy()
    assert np.any(connected != 0)


def test_bad_key_and_weight_are_refused(small_kb):
    graph = build_matching_graph(
        small_kb.models, small_kb.datasets, small_kb.edges, small_kb.dataset_distances, False
    )
    with pytest.raises(ValueError, match="must not contain"):
        embed_graphs({"a|b": graph}, SETTINGS)
    u, v = next(iter(graph.edges))
    graph.edges[u, v]["weight"] = 0.0
    with pytest.raises(ValueError, match="non-positive weight"):
        embed_graphs({"g": graph}, SETTINGS)


_WALK_SCRIPT = """
import json, sys
import networkx as nx
from mnc_core.engine.embedding import Node2VecSettings, embed_graphs
graph = nx.Graph()
for i in range(12):
    graph.add_edge(f"n{i}", f"n{(i + 1) % 12}", weight=1.0 + i % 3)
    graph.add_edge(f"n{i}", f"n{(i + 5) % 12}", weight=0.5)
settings = Node2VecSettings(dim=4, num_walks=6, walk_length=8, window=2)
vectors = embed_graphs({"g": graph}, settings, seed=7)["g"]
json.dump(vectors.round(12).to_dict(), sys.stdout)
"""


def test_walks_do_not_depend_on_numba_threads():
    """pecanpy seeds each numba thread with seed + thread id: the embedding must force
    one thread, or an exported NUMBA_NUM_THREADS silently changes every result."""
    import json
    import os
    import subprocess
    import sys

    def run(threads: str) -> dict:
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", _WALK_SCRIPT], env=env,
                              capture_output=True, text=True, check=True, timeout=300)
        return json.loads(done.stdout)

    assert run("2") == run("1")
