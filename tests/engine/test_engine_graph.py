"""Matching graph construction and the similarity map of each edge type."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine.graph import (
    HIGHER_IS_BETTER_FLOOR,
    build_matching_graph,
    distance_similarity,
    node_name,
    score_similarity,
)


def test_distance_map_is_exp_of_distance_over_median():
    weights = distance_similarity(pd.Series([1.0, 2.0, 4.0]))
    assert weights.tolist() == pytest.approx([math.exp(-0.5), math.exp(-1.0), math.exp(-2.0)])


def test_lower_is_better_scores_map_to_decreasing_positive_weights():
    edges = pd.DataFrame({"dataset": ["x", "x", "y"], "score": [10.0, 20.0, 1000.0]})
    weights = score_similarity(edges, higher_is_better=False)
    assert weights.iloc[0] > weights.iloc[1] > 0
    assert weights.iloc[2] > 0  # far beyond the median: clipped, never dropped by pecanpy
    assert weights.iloc[0] == pytest.approx(math.exp(-10 / 20))


def test_higher_is_better_scores_are_scaled_per_dataset():
    edges = pd.DataFrame(
        {"dataset": ["x", "x", "x", "y", "y", "z"], "score": [0.5, 0.7, 0.9, 0.2, 0.3, 0.6]}
    )
    weights = score_similarity(edges, higher_is_better=True).tolist()
    assert weights[0] == pytest.approx(HIGHER_IS_BETTER_FLOOR)
    assert weights[1] == pytest.approx(HIGHER_IS_BETTER_FLOOR + (1 - HIGHER_IS_BETTER_FLOOR) / 2)
    assert weights[2] == pytest.approx(1.0)
    assert weights[3] == pytest.approx(HIGHER_IS_BETTER_FLOOR) and weights[4] == 1.0
    assert weights[5] == 1.0  # a single score on its dataset


def test_graph_nodes_edges_and_kinds(small_kb):
    held_out = small_kb.datasets[0]
    train = small_kb.edges[small_kb.edges["dataset"] != held_out]
    graph = build_matching_graph(
        small_kb.models, small_kb.datasets, train, small_kb.dataset_distances, False
    )
    assert graph.number_of_nodes() == len(small_kb.models) + len(small_kb.datasets)
    kinds = {graph.nodes[n]["kind"] for n in graph.nodes}
    assert kinds == {"model", "dataset"}
    target = node_name("dataset", held_out)
    # the held-out dataset keeps its dataset-dataset edges only
    assert {graph.edges[target, n]["kind"] for n in graph.neighbors(target)} == {"distance"}
    assert graph.degree(target) == len(small_kb.datasets) - 1
    score_edges = [e for e in graph.edges(data=True) if e[2]["kind"] == "score"]
    assert len(score_edges) == len(train)
    assert all(0 < d["weight"] <= 1 for _, _, d in graph.edges(data=True))
    # a better (lower) FID gives a heavier edge on the same dataset
    other = small_kb.datasets[1]
    rows = train[train["dataset"] == other].sort_values("score")
    best, worst = rows["model"].iloc[0], rows["model"].iloc[-1]
    d = node_name("dataset", other)
    assert graph.edges[node_name("model", best), d]["weight"] > graph.edges[
        node_name("model", worst), d
    ]["weight"]


def test_isolated_nodes_are_kept(small_kb):
    graph = build_matching_graph(
        small_kb.models,
        small_kb.datasets,
        small_kb.edges.iloc[0:0],
        small_kb.dataset_distances.iloc[0:0],
        False,
    )
    assert graph.number_of_nodes() == len(small_kb.models) + len(small_kb.datasets)
    assert graph.number_of_edges() == 0
    assert np.all([graph.degree(n) == 0 for n in graph.nodes])


def test_unknown_node_kind_is_refused():
    with pytest.raises(ValueError, match="unknown node kind"):
        node_name("pipeline", "x")
