"""One knowledge base from what was measured here and what was imported.

The platform computes edges, features and distances for its own models and datasets,
and may import any number of knowledge-base folders. The engine needs one
`KnowledgeBase`; the rules that make it, documented in docs/knowledge-base.md:

- Edges: one per (model, dataset). When several sources know the same pair, an edge
  computed here wins over an imported one (it was measured with this platform's
  metric and settings), and among imported folders the first in the configured order
  wins. Every edge keeps its provenance (`computed`, or `imported:<folder>`) and every
  pair decided by the rule is listed (`EdgeConflict`).
- Features: an id's row comes from the first source that has it (computed first).
  Sources describe ids with different columns; the union of columns is used and a
  cell a source does not have is 0.0, the mean of a z-scored feature (CLIP means are
  centred the same way below), so it reads as "average" rather than as a signal.
- Distances: each unordered dataset pair once, the first source's value kept.
- All sources must share the metric and its direction: mixing CLIP-FID with accuracy
  would make the ranks meaningless, so a mismatch is an error naming the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnc_core.kb.schema import DISTANCE_COLUMNS, EDGE_COLUMNS, KnowledgeBase

COMPUTED = "computed"
PROVENANCE = "provenance"
MERGED_EDGE_COLUMNS = (*EDGE_COLUMNS, PROVENANCE)


def imported_provenance(folder: str) -> str:
    """The provenance label of edges imported from `folder`."""
    return f"imported:{folder}"


@dataclass(frozen=True)
class EdgeSource:
    """Edges of one source (columns `EDGE_COLUMNS`), its provenance label, metric and direction."""

    provenance: str
    edges: pd.DataFrame
    metric: str
    higher_is_better: bool


def check_same_metric(sources: Sequence[EdgeSource]) -> tuple[str, bool]:
    """The metric and direction every source with edges shares; an error names a mismatch."""
    with_edges = [s for s in sources if len(s.edges)] or list(sources)
    if not with_edges:
        raise ValueError("no knowledge: no computed edges and no imported folder")
    first = with_edges[0]
    for source in with_edges[1:]:
        if (source.metric, source.higher_is_better) != (first.metric, first.higher_is_better):
            raise ValueError(
                f"{source.provenance}: metric {source.metric!r} "
                f"({_direction(source.higher_is_better)}) differs from {first.provenance}'s "
                f"{first.metric!r} ({_direction(first.higher_is_better)}); edges of different "
                "metrics cannot be ranked together"
            )
    return first.metric, first.higher_is_better


def _direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def merge_edges(sources: Sequence[EdgeSource]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each pair from the first source (in the order given) that knows it; and the pairs decided.

    Returns `(edges, conflicts)`: `edges` has `MERGED_EDGE_COLUMNS`; `conflicts` has
    model, dataset, kept (provenance), dropped (the other provenances, `; `-joined).
    """
    frames = [
        s.edges.assign(**{PROVENANCE: s.provenance})[list(MERGED_EDGE_COLUMNS)]
        for s in sources
        if len(s.edges)
    ]
    if not frames:
        empty = pd.DataFrame(columns=list(MERGED_EDGE_COLUMNS))
        return empty, pd.DataFrame(columns=["model", "dataset", "kept", "dropped"])
    stacked = pd.concat(frames, ignore_index=True)  # in priority order
    winner = stacked.groupby(["model", "dataset"], sort=False)[PROVENANCE].transform("first")
    # Only pairs known to several sources are decided here; a pair listed twice by one
    # source is kept twice, so the edge checks see (and refuse) that source's duplicate.
    conflicts = (
        stacked[stacked[PROVENANCE] != winner]
        .groupby(["model", "dataset"], sort=True)[PROVENANCE]
        .agg(lambda p: "; ".join(dict.fromkeys(p)))
        .rename("dropped")
        .reset_index()
    )
    kept = winner.loc[stacked.index].rename("kept")
    conflicts = conflicts.merge(
        pd.concat([stacked[["model", "dataset"]], kept], axis=1).drop_duplicates(),
        on=["model", "dataset"],
    )[["model", "dataset", "kept", "dropped"]]
    edges = stacked[stacked[PROVENANCE] == winner]
    return edges.sort_values(["dataset", "model"]).reset_index(drop=True), conflicts


def combine_features(tables: Sequence[pd.DataFrame], index_name: str) -> pd.DataFrame:
    """Rows of every table (first table wins for an id); missing cells are 0.0."""
    rows: list[pd.DataFrame] = []
    seen: set[str] = set()
    for table in tables:
        fresh = table.loc[[i for i in table.index if i not in seen]]
        seen.update(fresh.index)
        rows.append(fresh)
    columns = list(dict.fromkeys(c for t in tables for c in t.columns))
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.Index([], name=index_name), dtype=float)
    combined = pd.concat(rows).reindex(columns=columns).fillna(0.0).astype(float)
    combined.index.name = index_name
    return combined


def embedding_features(means: pd.Series, prefix: str = "clip") -> pd.DataFrame:
    """Dataset features from mean CLIP embeddings (one vector per dataset), centred.

    Centring over the datasets puts these columns on the same footing as z-scored
    imported features (0 = average), which is what the 0.0 fill of `combine_features`
    assumes.
    """
    if means.empty:
        return pd.DataFrame(index=pd.Index([], name="dataset"), dtype=float)
    matrix = np.vstack([np.asarray(v, dtype=float) for v in means.to_numpy()])
    matrix = matrix - matrix.mean(axis=0, keepdims=True)
    columns = [f"{prefix}_{k}" for k in range(matrix.shape[1])]
    return pd.DataFrame(matrix, index=pd.Index(means.index, name="dataset"), columns=columns)


def combine_distances(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Each unordered pair once (first table wins), self-pairs dropped."""
    frames = [t[list(DISTANCE_COLUMNS)] for t in tables if len(t)]
    if not frames:
        return pd.DataFrame(columns=list(DISTANCE_COLUMNS))
    stacked = pd.concat(frames, ignore_index=True)
    stacked = stacked[stacked["dataset_a"] != stacked["dataset_b"]]
    a, b = (stacked[c].to_numpy(dtype=object) for c in ("dataset_a", "dataset_b"))
    swap = a > b  # vectorised: a row-wise min/max of two string columns is slow
    stacked = stacked.assign(dataset_a=np.where(swap, b, a), dataset_b=np.where(swap, a, b))
    return stacked.drop_duplicates(["dataset_a", "dataset_b"], keep="first").reset_index(
        drop=True
    )


def assemble_knowledge(
    edges: pd.DataFrame,
    model_features: pd.DataFrame,
    dataset_features: pd.DataFrame,
    distances: pd.DataFrame,
    metric: str,
    higher_is_better: bool,
    description: str = "assembled by the Match & Choose platform",
) -> KnowledgeBase:
    """The engine's `KnowledgeBase` (validate it by writing and reading it with `store`)."""
    return KnowledgeBase(
        edges=edges[list(EDGE_COLUMNS)].reset_index(drop=True),
        metric=metric,
        higher_is_better=higher_is_better,
        model_features=model_features,
        dataset_features=dataset_features,
        dataset_distances=distances.reset_index(drop=True),
        description=description,
        source="mnc platform",
    )
