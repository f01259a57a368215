"""Node2Vec+ node vectors of many matching graphs at once (pecanpy + gensim).

All graphs of a run go into ONE pecanpy graph, their disjoint union (node names
prefixed by the graph's key): pecanpy builds the CSR arrays and node2vec+'s noise
thresholds once. Each graph still gets its own walks and its own word2vec:

- walks start only from that graph's nodes and, the union being disjoint, never
  leave it; every graph's walks are drawn with the same seed, so a graph's walks do
  not depend on which other graphs share the run;
- a separate gensim Word2Vec (one worker, seeded, deterministic hash) is trained per
  graph on its walks only.
So a fold's embedding is exactly what a run with that fold alone would give, and
nothing of another fold (e.g. one that still has the held-out dataset's edges) can
reach it. Walks use node2vec+ (`extend=True`) on `SparseOTF` (transition
probabilities on the fly: no memory blow-up on large unions).

The walks run in `walk_kernel.node2vec_plus_walks`, one module-level numba kernel
taking the graph's arrays as arguments and kept in numba's disk cache, instead of
pecanpy's per-graph closure, which numba compiled again for every new graph (4-14 s:
most of a `mnc rank` in a long-running process). Its walks are identical to pecanpy's
for the same seed (tested against pecanpy); it is sequential, so the walks do not
depend on NUMBA_NUM_THREADS. Nodes without any edge get a zero vector (no walk can
say anything about them).

`enable_kernel_cache` turns numba's on-disk cache on for pecanpy's module-level
kernels (not declared `cache=True` by pecanpy), which the walk kernel calls: the first
compile after an install is shorter.
"""

from __future__ import annotations

import logging
import time
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

KEY_SEPARATOR = "|"


@dataclass(frozen=True)
class Node2VecSettings:
    """Walk and word2vec parameters (defaults sized for zoos of ~10-100 nodes)."""

    dim: int = 32
    num_walks: int = 10
    walk_length: int = 20
    window: int = 5
    epochs: int = 1
    p: float = 1.0
    q: float = 1.0
    gamma: float = 0.0


def enable_kernel_cache() -> int:
    """Turn on numba's on-disk cache for pecanpy's module-level kernels; returns how many.

    Idempotent. The cache lives where numba puts it (`__pycache__` beside pecanpy's
    source, or NUMBA_CACHE_DIR) and is keyed by numba on source and signature, so it
    can only be reused for the same code.
    """
    from numba.core.registry import CPUDispatcher
    from pecanpy import pecanpy as walkers
    from pecanpy.rw import dense_rw, sparse_rw

    namespaces = [walkers, sparse_rw, dense_rw, sparse_rw.SparseRWGraph, dense_rw.DenseRWGraph]
    count = 0
    for namespace in namespaces:
        for member in vars(namespace).values():
            kernel = member.__func__ if isinstance(member, staticmethod) else member
            if isinstance(kernel, CPUDispatcher):
                kernel.enable_caching()
                count += 1
    return count


def stable_hash(text: str) -> int:
    """Process-independent hash for gensim's vector seeding (Python's `hash` is salted)."""
    return zlib.crc32(text.encode("utf-8"))


def embed_graphs(
    graphs: Mapping[str, nx.Graph],
    settings: Node2VecSettings | None = None,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Node vectors (index = node name, `settings.dim` columns) for each graph.

    `graphs`: key -> weighted networkx graph (edge attribute `weight` > 0); keys
    must not contain `|`.
    """
    settings = settings or Node2VecSettings()
    if not graphs:
        return {}
    started = time.perf_counter()
    enable_kernel_cache()
    union, members = _union_graph(graphs, settings, seed)
    with warnings.catch_warnings():
        # node2vec+ noise thresholds are means over neighbours: NaN (unused) for
        # isolated nodes, with a harmless numpy warning.
        warnings.simplefilter("ignore", RuntimeWarning)
        thresholds = union.get_noise_thresholds()
    index_of = {name: i for i, name in enumerate(union.nodes)}
    vectors: dict[str, pd.DataFrame] = {}
    for done, (key, graph) in enumerate(graphs.items(), start=1):
        walks = _component_walks(union, thresholds, members[key], index_of, settings, seed)
        vectors[key] = _word2vec(graph, walks, key, settings, seed)
        if done % 50 == 0 or done == len(graphs):
            log.info(
                "node2vec+: %d/%d graphs embedded (%.1f s)",
                done,
                len(graphs),
                time.perf_counter() - started,
            )
    return vectors


def _union_graph(graphs: Mapping[str, nx.Graph], settings: Node2VecSettings, seed: int):
    """One pecanpy SparseOTF graph holding every graph, nodes named `key|node`."""
    from pecanpy.graph import AdjlstGraph
    from pecanpy.pecanpy import SparseOTF

    adjacency = AdjlstGraph()
    members: dict[str, list[str]] = {}
    for key, graph in graphs.items():
        if KEY_SEPARATOR in key:
            raise ValueError(f"graph key {key!r} must not contain {KEY_SEPARATOR!r}")
        names = [f"{key}{KEY_SEPARATOR}{node}" for node in graph.nodes]
        members[key] = names
        for name in names:
            adjacency.add_node(name)
        for a, b, weight in graph.edges(data="weight"):
            if not weight or weight <= 0:
                raise ValueError(f"graph {key!r}: edge {a}-{b} has non-positive weight {weight}")
            adjacency.add_edge(
                f"{key}{KEY_SEPARATOR}{a}", f"{key}{KEY_SEPARATOR}{b}", float(weight), False
            )
    union = SparseOTF.from_adjlst_graph(
        adjacency,
        p=settings.p,
        q=settings.q,
        workers=1,
        extend=True,
        gamma=settings.gamma,
        random_state=seed,
    )
    return union, members


def _component_walks(union, thresholds, names, index_of, settings, seed):
    """Walks (lists of node names) from one component's nodes, with a fixed seed.

    Every node starts `num_walks` walks, in an order shuffled by the run's seed (the
    same for every component, so a component's walks do not depend on the others).
    """
    from mnc_core.engine.walk_kernel import node2vec_plus_walks

    starts = np.array([index_of[n] for n in names], dtype=np.uint32)
    starts = np.concatenate([starts] * settings.num_walks)
    starts = starts[np.random.default_rng(seed).permutation(starts.size)]
    matrix = node2vec_plus_walks(
        union.indptr,
        union.indices,
        union.data,
        thresholds,
        float(union.p),
        float(union.q),
        seed,
        starts,
        settings.walk_length,
    )
    nodes = union.nodes
    return [[nodes[i] for i in row[: row[-1]]] for row in matrix]


def _word2vec(graph: nx.Graph, walks, key: str, settings: Node2VecSettings, seed: int):
    """Skip-gram vectors of one graph's nodes; isolated nodes get zeros."""
    from gensim.models import Word2Vec

    prefix = len(key) + len(KEY_SEPARATOR)
    sentences = [[name[prefix:] for name in walk] for walk in walks if len(walk) > 1]
    nodes = list(graph.nodes)
    table = np.zeros((len(nodes), settings.dim), dtype=np.float64)
    if sentences:
        model = Word2Vec(
            sentences,
            vector_size=settings.dim,
            window=settings.window,
            sg=1,
            min_count=0,
            workers=1,
            epochs=settings.epochs,
            sample=0,  # tiny vocabularies: frequent-word downsampling would drop 3/4 of walks
            seed=seed,
            hashfxn=stable_hash,
        )
        for row, node in enumerate(nodes):
            if graph.degree(node) > 0 and node in model.wv:
                table[row] = model.wv[node]
    columns = [f"n2v_{k:02d}" for k in range(settings.dim)]
    return pd.DataFrame(table, index=pd.Index(nodes, name="node"), columns=columns)
