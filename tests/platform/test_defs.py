"""The real definitions resolve (as dagster-open-platform's test_defs does), with the asset
graph, partitions, pools and checks the platform promises, and load without heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mnc_assets.partitions import dataset_partitions, model_partitions, pair_partitions

REPO = Path(__file__).resolve().parents[2]
PLATFORM_ASSETS = {
    "model_pipeline": model_partitions, "model_feature_row": model_partitions,
    "dataset_manifest": dataset_partitions, "dataset_embedding": dataset_partitions,
    "dataset_distance_row": dataset_partitions, "recommendation": dataset_partitions,
    "lora_checkpoint": pair_partitions, "pair_samples": pair_partitions,
    "fid_edge": pair_partitions,
    "imported_knowledge": None, "fid_edges": None, "knowledge_base": None,
    "matching_graph": None, "node2vec_embeddings": None, "ranker": None,
    "near_best_calibration": None, "leave_one_out_evaluation": None, "sparsity_evaluation": None,
}
SQL_MODELS = {p.stem for p in (REPO / "dbt_like_sql").glob("*.sql")}


@pytest.fixture(scope="module")
def graph():
    from definitions import defs

    return defs.resolve_asset_graph()


def test_the_asset_graph_holds_every_stage_and_sql_model(graph):
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == set(PLATFORM_ASSETS) | SQL_MODELS
    for name, partitions in PLATFORM_ASSETS.items():
        assert graph.get(dg.AssetKey(name)).partitions_def == partitions, name


def test_data_flows_one_way_from_pipelines_to_recommendations(graph):
    def upstream(name):
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert upstream("lora_checkpoint") == {"model_pipeline", "dataset_manifest"}
    assert upstream("fid_edges") == {"fid_edge", "imported_knowledge"}
    assert "fid_edges" in upstream("recommendation")
    assert upstream("ranker") == {"node2vec_embeddings", "knowledge_base"}
    assert graph.toposorted_asset_keys.index(dg.AssetKey("fid_edges")) < \
        graph.toposorted_asset_keys.index(dg.AssetKey("ranker"))


def test_training_and_sampling_hold_the_gpu_pool(graph):
    in_pool = {k.to_user_string() for k in graph.get_all_asset_keys()
               if graph.get(k).pools == {"gpu"}}
    assert in_pool == {"lora_checkpoint", "pair_samples"}


def test_fid_edges_have_a_blocking_and_an_advisory_check(graph):
    checks = {k.name: graph.get_check_spec(k) for k in graph.asset_check_keys}
    assert set(checks) == {"fid_edges_valid", "fid_edges_advisory"}
    assert checks["fid_edges_valid"].blocking and not checks["fid_edges_advisory"].blocking
    assert {c.asset_key for c in checks.values()} == {dg.AssetKey("fid_edges")}


def test_loading_the_definitions_imports_no_heavy_library():
    code = ("import sys, json, definitions; "
            "print(json.dumps(sorted(m for m in ('torch', 'diffusers', 'great_expectations', "
            "'catboost', 'pecanpy', 'open_clip', 'matplotlib') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                         capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_dagster_definitions_validate_passes(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=REPO, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path),
                                 "MNC_DATA_ROOT": str(tmp_path / "data")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr
