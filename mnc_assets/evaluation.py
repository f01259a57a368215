"""Evaluations of the engine on the current knowledge: leave-one-out and sparsity sweep.

Each run appends its results to the `evaluations` history (run id and time kept), so
the UI shows the latest table and how the figures move as the knowledge grows.
"""


import dagster as dg
import pandas as pd

from mnc_assets.knowledge import CURRENT, knowledge_base
from mnc_assets.metadata import lines, markdown_table, plot_markdown, table_metadata
from mnc_resources import ArtifactStore, EngineConfig, Warehouse

GROUP = "evaluation"
ALL_LEVELS = "all"  # the `level` of results pooled over every level (and of leave-one-out)


def evaluation_rows(result: dict, protocol: str, run_id: str) -> pd.DataFrame:
    """A protocol's JSON-style result as long history rows (one per level, method, metric)."""
    now = pd.Timestamp.now()
    scopes = [(ALL_LEVELS, result["methods"])]
    scopes += [(level, {m: v for m, v in row.items() if isinstance(v, dict)})
               for level, row in result.get("levels", {}).items()]
    rows = [
        (run_id, now, protocol, level, method, metric, value,
         len(summary.get("per_dataset", {})) or None)
        for level, methods in scopes
        for method, summary in methods.items()
        for metric, value in summary["mean"].items()
    ]
    return pd.DataFrame(rows, columns=["run_id", "evaluated_at", "protocol", "level", "method",
                                       "metric", "value", "n_datasets"])


def _methods_markdown(result: dict) -> str:
    """Methods x metrics as a markdown table (paper Table 3, ablations as Table 4)."""
    from mnc_core.engine.report import METHOD_ORDER

    methods = result["methods"]
    names = [m for m in METHOD_ORDER if m in methods] + [m for m in methods
                                                          if m not in METHOD_ORDER]
    table = pd.DataFrame([{"method": n, **methods[n]["mean"]} for n in names])
    return markdown_table(table)


def _trend(warehouse: Warehouse, protocol: str, metric: str) -> str | None:
    """A line per method of `metric` over this protocol's runs (None before a second run)."""
    history = warehouse.read(
        "SELECT evaluated_at, method, value FROM evaluations WHERE protocol = ? AND level = ? "
        "AND metric = ? ORDER BY evaluated_at", [protocol, ALL_LEVELS, metric])
    if history["evaluated_at"].nunique() < 2:
        return None
    table = history.pivot_table(index="evaluated_at", columns="method", values="value")
    return plot_markdown(lines(table, "run", metric), f"{protocol}: {metric} over runs")


def _record(context, warehouse: Warehouse, result: dict, protocol: str) -> dict:
    rows = evaluation_rows(result, protocol, context.run_id)
    warehouse.append("evaluations", rows)
    metadata = {**table_metadata(rows), "methods": dg.MetadataValue.md(_methods_markdown(result)),
                "skipped": ", ".join(result.get("skipped", [])) or "none"}
    trend = _trend(warehouse, protocol, "osr")
    if trend:
        metadata["osr_trend"] = dg.MetadataValue.md(trend)
    return metadata


def _kb(artifacts: ArtifactStore):
    from mnc_core.kb.store import read_kb

    return read_kb(artifacts.layout.knowledge_dir(CURRENT))


@dg.asset(group_name=GROUP, deps=[knowledge_base], kinds={"catboost", "duckdb"})
def leave_one_out_evaluation(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, engine: EngineConfig,
    warehouse: Warehouse,
):
    """Leave-one-dataset-out: M&C, its ablations and the baselines (paper Tables 3-4)."""
    from mnc_core.engine.protocols import leave_one_out

    result = leave_one_out(_kb(artifacts), engine.settings(), engine.seed)
    return dg.MaterializeResult(metadata=_record(context, warehouse, result, "loo"))


@dg.asset(group_name=GROUP, deps=[knowledge_base], kinds={"catboost", "duckdb"})
def sparsity_evaluation(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, engine: EngineConfig,
    warehouse: Warehouse,
):
    """Leave-one-out after dropping 10-90 % of the model-dataset edges (paper Fig. 6)."""
    from mnc_core.engine.protocols import sparsity_sweep

    result = sparsity_sweep(_kb(artifacts), engine.settings(), engine.seed)
    metadata = _record(context, warehouse, result, "sparsity")
    curve = pd.DataFrame({
        method: {float(level): row[method]["mean"]["osr"] for level, row in result["levels"].items()
                 if method in row}
        for method in ("mnc", "overall", "random")
    })
    metadata["sparsity_curve"] = dg.MetadataValue.md(
        plot_markdown(lines(curve, "share of model-dataset edges dropped", "OSR"),
                      "OSR against sparsity"))
    return dg.MaterializeResult(metadata=metadata)
