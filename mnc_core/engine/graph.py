"""The matching graph (paper section 4.3) as a networkx graph.

Nodes: one per model (`kind="model"`) and one per dataset (`kind="dataset"`), named
by `node_name`. Edges: model-dataset (`kind="score"`, the known fine-tuning result)
and dataset-dataset (`kind="distance"`). Node2Vec+ (pecanpy) drops non-positive
weights and reads larger weights as "closer", so every edge gets a positive
similarity `weight` in (0, 1] through a monotone map chosen per edge type:

- dataset-dataset distance `d`: `exp(-d / median(d))` (median over the graph's
  distance edges): 1 for identical datasets, 1/e at a typical distance.
- model-dataset score `x`, lower is better (FID): `exp(-x / median(x))`, median over
  the graph's model edges: a better (lower) FID gives a heavier edge.
- model-dataset score `x`, higher is better (accuracy): per dataset min-max,
  `FLOOR + (1 - FLOOR) * (x - min_d) / (max_d - min_d)` with `FLOOR = 0.1`
  (1 when the dataset has a single or constant score): accuracies of one dataset are
  often within a few points, and the per-dataset scaling keeps their order visible
  to the walk while staying comparable across easy and hard datasets.
Weights are clipped below at `MIN_WEIGHT` so that far-away pairs stay edges.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

MIN_WEIGHT = 1e-6
HIGHER_IS_BETTER_FLOOR = 0.1
MODEL_PREFIX = "m:"
DATASET_PREFIX = "d:"


def node_name(kind: str, item: str) -> str:
    """The graph node of a model (`kind="model"`) or a dataset (`kind="dataset"`)."""
    if kind == "model":
        return MODEL_PREFIX + item
    if kind == "dataset":
        return DATASET_PREFIX + item
    raise ValueError(f"unknown node kind {kind!r} (expected 'model' or 'dataset')")


def distance_similarity(distances: pd.Series) -> pd.Series:
    """exp(-d / median d), clipped to [MIN_WEIGHT, 1]."""
    return _exp_similarity(distances)


def score_similarity(edges: pd.DataFrame, higher_is_better: bool) -> pd.Series:
    """Positive similarity of each model-dataset edge (`edges`: columns dataset, score)."""
    if edges.empty:
        return pd.Series(dtype=float, index=edges.index)
    if not higher_is_better:
        scores = edges["score"].astype(float)
        # The exp map needs x >= 0 (FID is); signed scores are shifted so the best is 0.
        return _exp_similarity(scores - min(0.0, float(scores.min())))
    by_dataset = edges.groupby("dataset")["score"]
    low = by_dataset.transform("min")
    span = by_dataset.transform("max") - low
    scaled = (edges["score"] - low) / span.where(span > 0, np.nan)
    scaled = scaled.fillna(1.0)
    weights = HIGHER_IS_BETTER_FLOOR + (1 - HIGHER_IS_BETTER_FLOOR) * scaled
    return weights.clip(lower=MIN_WEIGHT, upper=1.0)


def _exp_similarity(values: pd.Series) -> pd.Series:
    values = values.astype(float)
    if values.empty:
        return values
    scale = float(np.median(values))
    if not scale > 0:
        positive = values[values > 0]
        scale = float(positive.mean()) if len(positive) else 1.0
    return np.exp(-values / scale).clip(lower=MIN_WEIGHT, upper=1.0)


def build_matching_graph(
    models: list[str],
    datasets: list[str],
    edges: pd.DataFrame,
    distances: pd.DataFrame,
    higher_is_better: bool,
) -> nx.Graph:
    """The matching graph of the given known edges (model, dataset, score) and distances.

    Every model and dataset becomes a node, including ones without any edge (they
    are isolated and get a zero embedding downstream).
    """
    graph = nx.Graph()
    graph.add_nodes_from((node_name("model", m), {"kind": "model", "id": m}) for m in models)
    graph.add_nodes_from((node_name("dataset", d), {"kind": "dataset", "id": d}) for d in datasets)
    _add_edges(
        graph,
        edges[["model", "dataset", "score"]],
        score_similarity(edges, higher_is_better),
        ("model", "dataset"),
        kind="score",
    )
    _add_edges(
        graph,
        distances[["dataset_a", "dataset_b", "distance"]],
        distance_similarity(distances["distance"]),
        ("dataset", "dataset"),
        kind="distance",
    )
    return graph


def _add_edges(graph: nx.Graph, rows: pd.DataFrame, weights, ends: tuple[str, str], kind: str):
    """One edge per row `(a, b, value)`: node kinds `ends`, raw `value`, positive `weight`."""
    for (a, b, value), weight in zip(rows.itertuples(index=False, name=None), weights, strict=True):
        graph.add_edge(
            node_name(ends[0], a),
            node_name(ends[1], b),
            kind=kind,
            value=float(value),
            weight=float(weight),
        )
