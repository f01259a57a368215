"""The whole graph materialised on the tiny world: warehouse contents, files, checks, metadata,
and the recommendation equal to what `mnc rank` prints for the same knowledge and seed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mnc_assets.partitions import pair_key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def test_every_model_and_dataset_has_its_rows(tiny_platform):
    w = tiny_platform.warehouse
    features = w.read_table("model_features")
    assert sorted(features["model"]) == sorted(tiny_platform.models)
    assert (features["params"] > 0).all() and (features["tflops_per_image"] > 0).all()
    assert {json.loads(h)["pipeline_class"] for h in features["hyperparameters"]} == {
        "StableDiffusionPipeline", "StableDiffusionXLPipeline", "PixArtSigmaPipeline"}
    files = w.read_table("dataset_files")
    for dataset in tiny_platform.datasets:
        rows = files[files["dataset"] == dataset]
        assert len(rows) == 12  # every generated pair is valid
        assert set(rows["split"]) == {"train", "val"}
    embeddings = w.read_table("dataset_features")
    assert sorted(embeddings["dataset"]) == sorted(tiny_platform.datasets)
    assert all(np.isfinite(v).all() and len(v) == 64 for v in embeddings["mean_embedding"])


def test_each_dataset_computed_only_its_new_distances(tiny_platform):
    distances = tiny_platform.warehouse.read_table("dataset_distances")
    # materialised in order: the k-th dataset measured itself against the k earlier ones
    for k, dataset in enumerate(tiny_platform.datasets):
        assert set(distances.loc[distances["dataset"] == dataset, "other"]) == set(
            tiny_platform.datasets[:k])
    pairs = {frozenset(p) for p in zip(distances["dataset"], distances["other"], strict=True)}
    assert pairs == {frozenset(p) for p in combinations(tiny_platform.datasets, 2)}
    assert (distances["distance"] > 0).all()


def test_every_pair_has_a_computed_edge_and_artifacts(tiny_platform):
    edges = tiny_platform.warehouse.read_table("computed_fid_edges")
    expected = {(m, d) for m in tiny_platform.models for d in tiny_platform.datasets}
    assert set(zip(edges["model"], edges["dataset"], strict=True)) == expected
    assert np.isfinite(edges["clip_fid"]).all() and (edges["clip_fid"] >= 0).all()
    assert np.isfinite(edges["clip_fid_before"]).all()
    assert (edges["gpu_hours"] > 0).all()
    layout = tiny_platform.layout
    model, dataset = tiny_platform.models[0], tiny_platform.datasets[0]
    weights = layout.lora_dir(model, dataset) / "final" / "pytorch_lora_weights.safetensors"
    assert weights.is_file()
    for variant in ("lora", "base"):
        n = edges.set_index(["model", "dataset"]).loc[(model, dataset), "n_samples"]
        assert len(list(layout.samples_dir(model, dataset, variant).glob("*.png"))) == n


def test_merged_edges_carry_provenance_and_pass_the_checks(tiny_platform):
    merged = tiny_platform.warehouse.read_table("fid_edges")
    computed = tiny_platform.warehouse.read_table("computed_fid_edges")
    assert len(merged) == len(computed) and set(merged["provenance"]) == {"computed"}
    joined = merged.merge(computed, on=["model", "dataset"])
    assert (joined["score"] == joined["clip_fid"]).all()
    assert (joined["score_before"] == joined["clip_fid_before"]).all()
    metric = tiny_platform.warehouse.read_table("knowledge_metric")
    assert metric.to_dict("records") == [{"metric": "clip_fid", "higher_is_better": False}]
    for name in ("fid_edges_valid", "fid_edges_advisory"):
        key = dg.AssetCheckKey(dg.AssetKey("fid_edges"), name)
        record = tiny_platform.instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [key])[key]
        evaluation = record.event.asset_check_evaluation
        if name == "fid_edges_valid":
            assert evaluation.passed, evaluation.metadata["summary"].value


def _latest_metadata(platform, key: str, partition: str | None = None) -> dict:
    records = platform.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key),
                              asset_partitions=[partition] if partition else None), limit=1
    ).records
    return records[0].asset_materialization.metadata


def test_ui_metadata_has_tables_and_plots(tiny_platform):
    edges = _latest_metadata(tiny_platform, "fid_edges")
    assert edges["dagster/row_count"].value == 12
    assert edges["heatmap"].value.startswith("![")
    assert "data:image/png;base64," in edges["before_vs_after"].value
    ranker = _latest_metadata(tiny_platform, "ranker")
    assert "data:image/png;base64," in ranker["top_features"].value
    importances = tiny_platform.warehouse.read_table("feature_importances")
    assert set(importances["input_group"]) <= {"model", "dataset", "graph"}
    assert math.isclose(importances["importance"].sum(), 100.0, rel_tol=1e-6)
    recommendation = _latest_metadata(tiny_platform, "recommendation", tiny_platform.datasets[0])
    assert "| rank | model |" in recommendation["recommendation"].value
    assert "data:image/png;base64," in recommendation["confidence_plot"].value
    loo = _latest_metadata(tiny_platform, "leave_one_out_evaluation")
    assert "| method |" in loo["methods"].value and "mnc" in loo["methods"].value


def test_recommendation_equals_mnc_rank(tiny_platform, tmp_path):
    dataset = tiny_platform.datasets[0]
    rows = tiny_platform.warehouse.read_table("recommendations", {"dataset": dataset})
    assert sorted(rows["model"]) == sorted(tiny_platform.models)
    folder = tiny_platform.layout.knowledge_dir(f"for-{dataset}")
    out = tmp_path / "rank.json"
    subprocess.run(
        [str(Path(sys.executable).with_name("mnc")), "rank", "--kb", str(folder),
         "--dataset", dataset, "--seed", str(rows["seed"].iloc[0]), "--json", str(out)],
        check=True, capture_output=True, text=True,
    )
    printed = pd.DataFrame(json.loads(out.read_text())["ranking"]).set_index("model")
    mine = rows.set_index("model").loc[printed.index]
    assert list(mine["rank"]) == list(printed["rank"])
    np.testing.assert_allclose(mine["goodness"], printed["goodness"])
    np.testing.assert_allclose(mine["confidence"], printed["confidence"])
    # the dataset's own edges are shown beside, never used
    known = tiny_platform.warehouse.read_table("fid_edges").query("dataset == @dataset")
    np.testing.assert_allclose(mine["known_score"].sort_index(),
                               known.set_index("model")["score"].sort_index())


def test_evaluation_history_keeps_each_run(tiny_platform):
    before = tiny_platform.warehouse.read_table("evaluations")
    assert set(before["protocol"]) == {"loo"} and before["run_id"].nunique() == 1
    assert {"mnc", "overall", "random"} <= set(before["method"])
    tiny_platform.materialize(["leave_one_out_evaluation"])
    after = tiny_platform.warehouse.read_table("evaluations")
    assert after["run_id"].nunique() == 2 and len(after) == 2 * len(before)
    first = after[after["run_id"] == before["run_id"].iloc[0]].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, before)  # history rows are never rewritten
    assert "osr_trend" in _latest_metadata(tiny_platform, "leave_one_out_evaluation")


def test_rematerialising_a_partition_touches_only_its_rows(tiny_platform):
    w = tiny_platform.warehouse
    model, dataset = tiny_platform.models[1], tiny_platform.datasets[2]
    tables = ("computed_fid_edges", "dataset_files", "dataset_features", "dataset_distances")
    before = {t: w.read_table(t) for t in tables}
    tiny_platform.materialize(["fid_edge"], pair_key(model, dataset))
    tiny_platform.materialize(["dataset_manifest", "dataset_embedding"], dataset)
    after = {t: w.read_table(t) for t in tables}

    def others(frame, table):
        mine = frame["dataset"] == dataset
        if table == "computed_fid_edges":
            mine &= frame["model"] == model
        return frame[~mine].sort_values(list(frame.columns[:2])).reset_index(drop=True)

    for table in tables:
        pd.testing.assert_frame_equal(others(after[table], table), others(before[table], table))
        assert len(after[table]) == len(before[table])  # replaced, not appended
    edge = after["computed_fid_edges"].query("model == @model and dataset == @dataset")
    old = before["computed_fid_edges"].query("model == @model and dataset == @dataset")
    assert float(edge["clip_fid"].iloc[0]) == pytest.approx(float(old["clip_fid"].iloc[0]))
    assert edge["computed_at"].iloc[0] > old["computed_at"].iloc[0]


def test_the_recommendation_carries_the_stored_calibration_and_costs(tiny_platform):
    dataset = tiny_platform.datasets[0]
    rows = tiny_platform.warehouse.read_table("recommendations", {"dataset": dataset})
    rows = rows.set_index("model")
    stored = json.loads(tiny_platform.layout.calibration_path().read_text())
    raw = 1.0 - (rows["rank"] - 1.0) / (len(rows) - 1)
    np.testing.assert_allclose(rows["near_best_probability"],
                               np.interp(raw, stored["x_thresholds"], stored["y_thresholds"]))
    assert rows.sort_values("rank")["in_shortlist"].tolist() == sorted(
        rows["in_shortlist"].tolist(), reverse=True)  # a prefix of the predicted order
    hours = tiny_platform.warehouse.read_table("computed_fid_edges").groupby("model")[
        "gpu_hours"].median()
    np.testing.assert_allclose(rows["cost_gpu_hours"], hours.reindex(rows.index))
    # every pair is measured here: nothing left to fine-tune, the loop would stop
    assert rows["next_order"].isna().all() and rows["stop"].all()
    metadata = _latest_metadata(tiny_platform, "recommendation", dataset)
    assert metadata["next_model"].value == "none" and metadata["stop"].value is True
    assert "every model is tried" in metadata["stop_reasons"].value
    assert "| rank | model | near_best_probability |" in metadata["shortlist"].value
