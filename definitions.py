"""Dagster entry point: every asset, check, resource and executor, assembled in one place.

The engine lives in `mnc_core` (no Dagster imports); `mnc_assets` wraps it in thin
assets, one module per stage, and `mnc_resources` declares the resources once.
`MNC_EXECUTOR=k8s` runs each step in its own Kubernetes pod (see mnc_assets/executors.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from mnc_assets import (
    automation,
    checks,
    datasets,
    decisions,
    evaluation,
    knowledge,
    models,
    pairs,
    selection,
)
from mnc_assets.executors import executor_mode, platform_executor
from mnc_assets.sql_models import GROUP_NAME as SQL_GROUP
from mnc_assets.sql_models import SQL_FOLDER, sql_model_assets
from mnc_resources import platform_resources

STAGES = (models, datasets, pairs, knowledge, selection, decisions, evaluation)

# Which asset writes each warehouse table: a SQL model reading a table depends on it.
TABLE_PRODUCERS: dict[str, dg.AssetKey] = {
    "model_features": models.model_feature_row.key,
    "dataset_files": datasets.dataset_manifest.key,
    "dataset_skipped_files": datasets.dataset_manifest.key,
    "dataset_features": datasets.dataset_embedding.key,
    "dataset_distances": datasets.dataset_distance_row.key,
    "computed_fid_edges": pairs.fid_edge.key,
    "imported_edges": knowledge.imported_knowledge.key,
    "fid_edges": knowledge.fid_edges.key,
    "knowledge_metric": knowledge.fid_edges.key,
    "recommendations": selection.recommendation.key,
    "feature_importances": selection.ranker.key,
    "evaluations": evaluation.leave_one_out_evaluation.key,
}


# Rebuild every SQL model (in dependency order; independent ones run in parallel).
sql_models_job = dg.define_asset_job(
    "sql_models_job", selection=dg.AssetSelection.groups(SQL_GROUP)
)


def build_defs(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """The platform's definitions, configured from `env` (default: the environment)."""
    return dg.Definitions(
        assets=[*dg.load_assets_from_modules(list(STAGES)),
                *sql_model_assets(SQL_FOLDER, TABLE_PRODUCERS)],
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        jobs=[sql_models_job, *automation.JOBS],
        sensors=automation.sensors(env),
        schedules=list(automation.SCHEDULES),
        resources=platform_resources(env),
        executor=platform_executor(executor_mode(env)),
    )


defs = build_defs()
