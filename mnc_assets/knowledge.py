"""The knowledge: imported folders, the merged FID-edge table (checked), the assembled KB.

`fid_edges` merges the edges computed here with the imported ones by the rule of
`mnc_core.kb.assemble` (computed first, then imported folders in configured order),
each edge with its provenance. Its blocking check (`checks.py`) stands between it and
everything that learns from it. `assemble_current_knowledge` is the one way from the
warehouse to the engine's `KnowledgeBase`: the `knowledge_base` asset and every
recommendation call it, and write the result as a knowledge-base folder, so
`mnc rank --kb <that folder>` reproduces what the platform recommended.
"""


import functools
from pathlib import Path

import dagster as dg
import pandas as pd

from mnc_assets.datasets import dataset_distance_row, dataset_embedding
from mnc_assets.metadata import (
    heatmap,
    markdown_table,
    plot_markdown,
    scatter,
    table_metadata,
)
from mnc_assets.models import model_feature_row
from mnc_assets.pairs import fid_edge
from mnc_resources import ArtifactStore, KnowledgeImports, ModelStore, Warehouse

GROUP = "knowledge"
COMPUTED_METRIC = "clip_fid"  # what fid_edge measures; lower is better
CURRENT = "current"  # knowledge_dir name of the assembled knowledge base
# Declarative automation of what learns from the edges: update when an upstream did, but
# only while every blocking check of the upstreams passes (a bad edge never gets in).
AFTER_CHECKS = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
)


@dg.asset(group_name=GROUP, kinds={"duckdb"})
def imported_knowledge(knowledge_imports: KnowledgeImports, warehouse: Warehouse):
    """Edges of every configured knowledge-base folder (validated; a bad folder is refused)."""
    frames, summary = [], []
    for folder in knowledge_imports.folders:
        kb = read_imported(folder)  # KnowledgeBaseError names the file and row
        frames.append(kb.edges.assign(source=folder, metric=kb.metric,
                                      higher_is_better=kb.higher_is_better))
        summary.append((folder, kb.metric, len(kb.models), len(kb.datasets), len(kb.edges)))
    columns = ["model", "dataset", "score", "score_before", "cost", "source", "metric",
               "higher_is_better"]
    edges = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    warehouse.replace_table("imported_edges", edges)
    folders = pd.DataFrame(summary, columns=["folder", "metric", "models", "datasets", "edges"])
    return dg.MaterializeResult(
        metadata={**table_metadata(edges[columns]),
                  "folders": dg.MetadataValue.md(markdown_table(folders) if summary else "none")}
    )


def read_imported(folder: str):
    """An imported knowledge-base folder, validated; re-read only when one of its files changed.

    A long-running process (a run worker ranking several datasets, the sensor) would
    otherwise parse and validate the same folder for every recommendation.
    """
    files = sorted(p for p in Path(folder).iterdir() if p.is_file()) if Path(folder).is_dir() \
        else []
    signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    return _read_kb_cached(str(folder), signature)


@functools.lru_cache(maxsize=8)
def _read_kb_cached(folder: str, signature: tuple):
    from mnc_core.kb.store import read_kb

    return read_kb(folder)


def _edge_sources(warehouse: Warehouse):
    from mnc_core.kb.assemble import COMPUTED, EdgeSource, imported_provenance

    computed = warehouse.read(
        "SELECT model, dataset, clip_fid AS score, clip_fid_before AS score_before, "
        "gpu_hours AS cost FROM computed_fid_edges ORDER BY dataset, model"
    )
    sources = [EdgeSource(COMPUTED, computed, COMPUTED_METRIC, False)] if len(computed) else []
    imported = warehouse.read_table("imported_edges")
    for folder, rows in imported.groupby("source", sort=False):
        sources.append(EdgeSource(imported_provenance(str(folder)), rows, rows["metric"].iloc[0],
                                  bool(rows["higher_is_better"].iloc[0])))
    return sources


@dg.asset(group_name=GROUP, deps=[fid_edge, imported_knowledge], kinds={"duckdb"})
def fid_edges(warehouse: Warehouse):
    """Every known model-dataset edge, computed and imported, one per pair, with provenance."""
    from mnc_core.kb.assemble import check_same_metric, merge_edges

    sources = _edge_sources(warehouse)
    metric, higher_is_better = check_same_metric(sources)
    edges, conflicts = merge_edges(sources)
    warehouse.replace_table("fid_edges", edges)
    warehouse.replace_table(
        "knowledge_metric",
        pd.DataFrame({"metric": [metric], "higher_is_better": [higher_is_better]}),
    )
    return dg.MaterializeResult(metadata={
        **table_metadata(edges),
        "metric": metric,
        "higher_is_better": higher_is_better,
        "by_provenance": dg.MetadataValue.md(markdown_table(
            edges.groupby("provenance").size().rename("edges").reset_index())),
        "merge_rule": "computed here wins over imported; imported folders in configured order",
        "conflicts": dg.MetadataValue.md(markdown_table(conflicts) if len(conflicts) else "none"),
        **_edge_plots(edges, metric),
    })


def _edge_plots(edges: pd.DataFrame, metric: str) -> dict[str, dg.MetadataValue]:
    """The model x dataset heatmap (Fig. 3b) and before-vs-after scatter (Fig. 3a)."""
    if edges.empty:
        return {}
    # pivot_table, not pivot: a duplicated pair (which the blocking check then refuses)
    # must not keep the table from being written and checked
    matrix = edges.pivot_table(index="model", columns="dataset", values="score",
                               aggfunc="first", dropna=False)
    plots = {"heatmap": dg.MetadataValue.md(
        plot_markdown(heatmap(matrix, metric), f"{metric}: model x dataset", (6, 3.5)))}
    both = edges.dropna(subset=["score", "score_before"])
    if len(both):
        plots["before_vs_after"] = dg.MetadataValue.md(plot_markdown(
            scatter(both["score_before"], both["score"], f"{metric} before fine-tuning",
                    f"{metric} after"), "before vs after fine-tuning"))
    return plots


def _computed_model_features(models: pd.Series, model_store: ModelStore,
                             artifacts: ArtifactStore) -> pd.DataFrame:
    """The zoo-wide encoded features of `models` (those with a feature row in the
    warehouse), as `mnc zoo features` encodes them."""
    from mnc_core.t2i.model_features import model_feature_table

    if models.empty:
        return pd.DataFrame(index=pd.Index([], name="model"), dtype=float)
    return model_feature_table([model_store.pipeline_dir(m) for m in models],
                               cache_dir=artifacts.layout.model_costs_dir())


def _computed_distances(warehouse: Warehouse) -> pd.DataFrame:
    """Dataset-dataset rows, the most recently computed value of each pair first."""
    return warehouse.read(
        "SELECT dataset AS dataset_a, other AS dataset_b, distance FROM dataset_distances "
        "ORDER BY computed_at DESC"
    )


def assemble_current_knowledge(
    warehouse: Warehouse, model_store: ModelStore, artifacts: ArtifactStore,
    knowledge_imports: KnowledgeImports, folder: Path,
):
    """Assemble the knowledge from the warehouse and imports, write it to `folder`, read it back.

    Reading the written folder back validates it with the knowledge-base reader and
    returns exactly what `mnc rank --kb folder` would see.
    """
    from mnc_core.kb.assemble import (
        assemble_knowledge,
        combine_distances,
        combine_features,
        embedding_features,
    )
    from mnc_core.kb.store import write_and_read_kb

    imported = [read_imported(f) for f in knowledge_imports.folders]
    with warehouse.connect():  # the five reads below share one connection
        metric = warehouse.read_table("knowledge_metric")
        if metric.empty:
            raise dg.Failure("no FID-edge table yet: materialise fid_edges first")
        features = warehouse.read_table("dataset_features").set_index("dataset")["mean_embedding"]
        edges = warehouse.read_table("fid_edges")
        featured_models = warehouse.read("SELECT model FROM model_features ORDER BY model")
        distances = _computed_distances(warehouse)
    # outside the connection: a model's costs may be computed (and cached) here
    model_features = _computed_model_features(featured_models["model"], model_store, artifacts)
    kb = assemble_knowledge(
        edges,
        combine_features([model_features] + [k.model_features for k in imported], "model"),
        combine_features([embedding_features(features)] + [k.dataset_features for k in imported],
                         "dataset"),
        combine_distances([distances] + [k.dataset_distances for k in imported]),
        str(metric["metric"].iloc[0]), bool(metric["higher_is_better"].iloc[0]),
    )
    return write_and_read_kb(kb, folder)


@dg.asset(
    group_name=GROUP, kinds={"duckdb"},
    deps=[fid_edges, model_feature_row, dataset_embedding, dataset_distance_row],
    automation_condition=AFTER_CHECKS,
)
def knowledge_base(
    warehouse: Warehouse, model_store: ModelStore, artifacts: ArtifactStore,
    knowledge_imports: KnowledgeImports,
):
    """Everything known as one knowledge-base folder in the engine's format."""
    folder = artifacts.layout.knowledge_dir(CURRENT)
    kb = assemble_current_knowledge(warehouse, model_store, artifacts, knowledge_imports, folder)
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(folder)),
        "models": len(kb.models),
        "datasets": len(kb.datasets),
        "edges": len(kb.edges),
        "dataset_distances": len(kb.dataset_distances),
        "model_feature_columns": kb.model_features.shape[1],
        "dataset_feature_columns": kb.dataset_features.shape[1],
        "reproduce": f"mnc evaluate --kb {folder} --protocol loo --json loo.json",
    })
