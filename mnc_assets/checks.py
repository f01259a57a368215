"""Data-quality gates on the merged FID-edge table (Great Expectations, `fid_edge_expectations`).

The blocking check (`fid_edges_valid`) fails on any edge the ranker must not learn
from: a missing, infinite, negative or implausible score, a pair listed twice, an id
the knowledge does not know. Downstream steps of the same run then do not start, and
the automated downstream assets wait for it to pass (`AFTER_CHECKS`). The advisory
check (`fid_edges_advisory`) warns about per-dataset outliers and thin coverage of the
model x dataset matrix. Both carry the failing rows (model, dataset, value, provenance).
"""

import dagster as dg

from mnc_assets.knowledge import fid_edges, read_imported
from mnc_assets.selection import BLOCKING_CHECK
from mnc_resources import KnowledgeImports, Warehouse


def _known_ids(warehouse: Warehouse, imports: KnowledgeImports) -> tuple[list[str], list[str]]:
    """Models and datasets the knowledge has features for (computed or imported)."""
    models = set(warehouse.read("SELECT model FROM model_features")["model"])
    datasets = set(warehouse.read("SELECT dataset FROM dataset_features")["dataset"])
    for folder in imports.folders:
        kb = read_imported(folder)
        models.update(kb.models)
        datasets.update(kb.datasets)
    return sorted(models), sorted(datasets)


def _validate(warehouse: Warehouse, imports: KnowledgeImports):
    from mnc_assets.fid_edge_expectations import validate_fid_edges
    from mnc_core.kb.store import score_range

    metric = warehouse.read_table("knowledge_metric")
    edges = warehouse.read_table("fid_edges")
    if metric.empty:
        raise dg.Failure("fid_edges has not been materialised: nothing to check")
    name, higher_is_better = str(metric["metric"].iloc[0]), bool(metric["higher_is_better"].iloc[0])
    models, datasets = _known_ids(warehouse, imports)
    return validate_fid_edges(
        edges, models=models, datasets=datasets, metric=name,
        higher_is_better=higher_is_better, plausible_range=score_range(name),
    )


def _result(validation, blocking: bool) -> dict:
    """The fields of one check's result: the blocking or the advisory expectations."""
    return dict(
        passed=validation.blocking_passed if blocking else validation.advisory_passed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        metadata={
            "summary": dg.MetadataValue.md(validation.summary_markdown()),
            "failing_rows": dg.MetadataValue.int(len(validation.failing_rows(blocking=blocking))),
            "verdict": dg.MetadataValue.json(validation.to_json_dict()),
            "gx_result": dg.MetadataValue.json(validation.gx_result),
        },
    )


ADVISORY_CHECK = "fid_edges_advisory"


@dg.multi_asset_check(
    name="fid_edges_checks",
    specs=[
        dg.AssetCheckSpec(BLOCKING_CHECK, asset=fid_edges, blocking=True,
                          description="Edges the ranker may learn from: blocking "
                                      "expectations (GX)."),
        dg.AssetCheckSpec(ADVISORY_CHECK, asset=fid_edges, blocking=False,
                          description="Per-dataset outliers and matrix coverage: warnings "
                                      "only (GX)."),
    ],
)
def fid_edges_checks(warehouse: Warehouse, knowledge_imports: KnowledgeImports):
    """Both checks from one Great Expectations validation of the table."""
    validation = _validate(warehouse, knowledge_imports)
    yield dg.AssetCheckResult(check_name=BLOCKING_CHECK, **_result(validation, blocking=True))
    yield dg.AssetCheckResult(check_name=ADVISORY_CHECK, **_result(validation, blocking=False))
