"""The selection engine as assets: matching graph, Node2Vec+, the ranker, recommendations.

Each asset calls the engine (`mnc_core.engine`) on the assembled knowledge base and
records what it did. A dataset's recommendation is `rank_new_dataset` on a knowledge
base assembled for it (its own folder, so `mnc rank --kb <folder> --dataset <id>`
prints the same table); it runs only while the FID edges' blocking check passes, and
otherwise leaves the earlier recommendation as it was. Beside the ranking it records
the decisions (`mnc_assets/decisions.py`): each model's calibrated near-best
probability and the shortlist, read from the stored `near_best_calibration` (never
recalibrated per dataset), the GPU hours of one fine-tuning, and, when the dataset
already has known edges, the sequential update of `mnc next` (which untried model to
fine-tune next, and whether to stop).
"""


import shlex

import dagster as dg
import pandas as pd

from mnc_assets.datasets import dataset_distance_row, dataset_embedding
from mnc_assets.decisions import (
    Decision,
    decide,
    decision_metadata,
    near_best_calibration,
    read_calibration,
)
from mnc_assets.knowledge import (
    AFTER_CHECKS,
    CURRENT,
    assemble_current_knowledge,
    fid_edges,
    knowledge_base,
)
from mnc_assets.metadata import bars, markdown_table, plot_markdown, table_metadata
from mnc_assets.models import model_feature_row
from mnc_assets.partitions import dataset_partitions
from mnc_resources import ArtifactStore, EngineConfig, KnowledgeImports, ModelStore, Warehouse

GROUP = "selection"
BLOCKING_CHECK = "fid_edges_valid"  # the name of fid_edges' blocking check (checks.py)
GRAPH_NODES, GRAPH_EDGES, NODE_VECTORS, RANKER_FILE = (
    "graph_nodes.csv", "graph_edges.csv", "node_vectors.csv", "ranker.cbm")
TOP_K = 10


def _current_kb(artifacts: ArtifactStore):
    from mnc_core.kb.store import read_kb

    return read_kb(artifacts.layout.knowledge_dir(CURRENT))


@dg.asset(group_name=GROUP, deps=[knowledge_base], automation_condition=AFTER_CHECKS,
          kinds={"networkx"})
def matching_graph(artifacts: ArtifactStore):
    """Models and datasets joined by every known edge, weighted by similarity (paper 4.3)."""
    import networkx as nx

    from mnc_core.engine.predict import all_edges_fold, fold_graph

    kb = _current_kb(artifacts)
    graph = fold_graph(kb, all_edges_fold(kb))
    out = artifacts.layout.engine_dir()
    out.mkdir(parents=True, exist_ok=True)
    nodes = pd.DataFrame([{"node": n, **d} for n, d in graph.nodes(data=True)])
    edges = nx.to_pandas_edgelist(graph)
    nodes.to_csv(out / GRAPH_NODES, index=False)
    edges.to_csv(out / GRAPH_EDGES, index=False)
    return dg.MaterializeResult(metadata={
        "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
        "edges_by_kind": dg.MetadataValue.md(markdown_table(
            edges.groupby("kind").size().rename("edges").reset_index())),
        "path": dg.MetadataValue.path(str(out / GRAPH_EDGES)),
    })


def _read_graph(artifacts: ArtifactStore):
    import networkx as nx

    folder = artifacts.layout.engine_dir()
    nodes = pd.read_csv(folder / GRAPH_NODES)
    graph = nx.from_pandas_edgelist(pd.read_csv(folder / GRAPH_EDGES), edge_attr=True)
    graph.add_nodes_from((row.node, {"kind": row.kind, "id": row.id})
                         for row in nodes.itertuples())
    return graph


@dg.asset(group_name=GROUP, deps=[matching_graph], automation_condition=AFTER_CHECKS,
          kinds={"pecanpy"})
def node2vec_embeddings(artifacts: ArtifactStore, engine: EngineConfig):
    """Node2Vec+ vectors of every model and dataset node of the matching graph."""
    from mnc_core.engine.embedding import embed_graphs

    vectors = embed_graphs({"all": _read_graph(artifacts)}, engine.settings().node2vec,
                           engine.seed)["all"]
    path = artifacts.layout.engine_dir() / NODE_VECTORS
    vectors.to_csv(path)
    return dg.MaterializeResult(metadata={
        "nodes": len(vectors), "dimensions": vectors.shape[1],
        "path": dg.MetadataValue.path(str(path)),
    })


def _input_group(column: str) -> str:
    """The paper's Table 1 groups: model features, dataset features, graph."""
    prefix = column.split(":", 1)[0]
    return {"model": "model", "dataset": "dataset"}.get(prefix, "graph")


@dg.asset(group_name=GROUP, deps=[node2vec_embeddings, knowledge_base],
          automation_condition=AFTER_CHECKS, kinds={"catboost", "duckdb"})
def ranker(artifacts: ArtifactStore, engine: EngineConfig, warehouse: Warehouse):
    """The ranker trained on every known edge, and its feature importances (paper Table 1)."""
    from mnc_core.engine.inputs import BOTH
    from mnc_core.engine.predict import all_edges_fold, fit_ranker, fold_context
    from mnc_core.engine.rankers import feature_importances

    kb = _current_kb(artifacts)
    folder = artifacts.layout.engine_dir()
    vectors = pd.read_csv(folder / NODE_VECTORS, index_col=0)
    context = fold_context(kb, all_edges_fold(kb), vectors)
    fitted, columns = fit_ranker(context, BOTH, engine.settings(), engine.seed)
    importances = feature_importances(fitted, columns)
    table = pd.DataFrame({"feature": importances.index,
                          "input_group": [_input_group(c) for c in importances.index],
                          "importance": importances.to_numpy()})
    warehouse.replace_table("feature_importances", table)
    metadata = {**table_metadata(table), "ranker": engine.ranker}
    if fitted.model is not None:
        fitted.model.save_model(str(folder / RANKER_FILE))  # CatBoost's own format
        metadata["path"] = dg.MetadataValue.path(str(folder / RANKER_FILE))
    if len(table):
        groups = table.groupby("input_group")["importance"].sum().sort_values(ascending=False)
        metadata["importance_by_group"] = dg.MetadataValue.md(
            markdown_table(groups.rename("importance").reset_index()))
        metadata["top_features"] = dg.MetadataValue.md(plot_markdown(
            bars(importances.head(15), "importance (%)"), "feature importances", (5, 4)))
    return dg.MaterializeResult(metadata=metadata)


def _refuse_if_edges_failed_check(context: dg.AssetExecutionContext) -> None:
    """Stop before ranking when the latest evaluation of the blocking edge check failed."""
    key = dg.AssetCheckKey(fid_edges.key, BLOCKING_CHECK)
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])
    record = latest.get(key)
    evaluation = record.event.asset_check_evaluation if record and record.event else None
    if evaluation is not None and not evaluation.passed:
        raise dg.Failure(
            f"the FID edges failed their blocking check {BLOCKING_CHECK!r} (run "
            f"{record.run_id}); the earlier recommendation is kept until the edges are fixed"
        )


@dg.asset(
    partitions_def=dataset_partitions, group_name=GROUP, kinds={"catboost", "duckdb"},
    deps=[fid_edges, dataset_embedding, dataset_distance_row, near_best_calibration,
          dg.AssetDep(model_feature_row, partition_mapping=dg.AllPartitionMapping())],
)
def recommendation(
    context: dg.AssetExecutionContext, warehouse: Warehouse, model_store: ModelStore,
    artifacts: ArtifactStore, knowledge_imports: KnowledgeImports, engine: EngineConfig,
):
    """Every model's predicted rank for this dataset, treated as new (its known scores beside)."""
    from mnc_core.engine.predict import rank_new_dataset

    _refuse_if_edges_failed_check(context)
    dataset = context.partition_key
    folder = artifacts.layout.knowledge_dir(f"for-{dataset}")
    kb = assemble_current_knowledge(warehouse, model_store, artifacts, knowledge_imports, folder)
    if dataset not in kb.datasets:
        raise dg.Failure(f"dataset {dataset!r} has no features in the knowledge yet: "
                         "materialise its dataset_embedding (or import it) first")
    table = rank_new_dataset(kb, dataset, engine.settings(), engine.seed)
    calibration_file = artifacts.layout.calibration_path()
    calibration = read_calibration(calibration_file)
    decision = decide(kb, dataset, table, calibration, engine)
    # `mnc rank` reads the same stored calibration for the shortlist, `mnc next` for its
    # prior share: the commands below reproduce what this asset decided
    common = ["--kb", str(folder), "--dataset", dataset, "--ranker", engine.ranker,
              "--seed", str(engine.seed)]
    stored = [] if calibration is None else ["--calibration", str(calibration_file)]
    rows = recommendation_rows(table, dataset, engine, context.run_id, decision)
    warehouse.replace_partition("recommendations", {"dataset": dataset}, rows)
    shown = rows[["rank", "model", "goodness", "confidence", "known_score",
                  "near_best_probability", "in_shortlist", "next_order"]]
    return dg.MaterializeResult(metadata={
        **table_metadata(rows),
        **decision_metadata(decision, table),
        "best_model": str(rows["model"].iloc[0]),
        "metric": kb.metric,
        "recommendation": dg.MetadataValue.md(markdown_table(shown, TOP_K)),
        "confidence_plot": dg.MetadataValue.md(plot_markdown(
            bars(rows.set_index("model")["confidence"].head(TOP_K), "confidence"),
            f"confidence of the top {min(TOP_K, len(rows))} for {dataset}, "
            "in predicted order (best on top)")),
        "reproduce": shlex.join(["mnc", "rank", *common, *stored, *(
            [] if calibration is None else ["--probability", str(engine.shortlist_target)])]),
        "reproduce_next": shlex.join([
            "mnc", "next", *common, "--stop-probability", str(engine.stop_probability),
            *stored]),
    })


def recommendation_rows(table: pd.DataFrame, dataset: str, engine: EngineConfig,
                        run_id: str, decision: Decision) -> pd.DataFrame:
    """`rank_new_dataset`'s table and the decision as warehouse rows (best first)."""
    return pd.DataFrame({
        "dataset": dataset, "model": table.index.astype(str),
        "rank": table["rank"].astype(int).to_numpy(),
        "goodness": table["goodness"].astype(float).to_numpy(),
        "confidence": table["confidence"].astype(float).to_numpy(),
        "known_score": table["known_score"].astype(float).to_numpy(),
        "ranker": engine.ranker, "seed": engine.seed, "run_id": run_id,
        "computed_at": pd.Timestamp.now(),
        "near_best_probability": decision.near_best_probability.to_numpy(dtype=float),
        # nullable dtypes (not object arrays): the UI's column schema says bool / int
        "in_shortlist": pd.array(decision.in_shortlist.to_numpy(), dtype="boolean"),
        "cost_gpu_hours": decision.cost_gpu_hours.to_numpy(dtype=float),
        "next_order": pd.array(decision.next_order.to_numpy(), dtype="Int64"),
        "stop": decision.stop,
    })
