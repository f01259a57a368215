"""The automation jobs, the top-k sensor and the schedules, against the real definitions."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

import definitions
from mnc_assets.automation import (
    FINETUNE_TOP_K_ENV,
    NIGHTLY_LOO_CRON,
    READY_MARKER,
    WEEKLY_SPARSITY_CRON,
)
from mnc_assets.partitions import MODEL, add_datasets, add_models, pair_key
from mnc_core.kb.demo import make_demo_kb
from mnc_core.kb.store import write_kb
from mnc_core.t2i.synthetic_data import make_synthetic_dataset
from tests.platform.conftest import one_pair_world, tiny_env

pytestmark = pytest.mark.timeout(900)
PAIR_ASSETS = ("lora_checkpoint", "pair_samples", "fid_edge")


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def _selected(defs: dg.Definitions, job: str) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}


def _plant_edge(defs: dg.Definitions, model: str, dataset: str) -> None:
    """A computed FID edge, as fid_edge writes it."""
    row = pd.DataFrame({"model": [model], "dataset": [dataset], "clip_fid": [5.0],
                        "clip_fid_before": [np.nan], "kid": [np.nan], "cmmd": [np.nan],
                        "n_samples": [4], "gpu_hours": [0.01], "computed_at": [pd.Timestamp.now()]})
    defs.resources["warehouse"].append("computed_fid_edges", row)


def _backfill_targets(instance: dg.DagsterInstance) -> list[dict[str, set[str]]]:
    """Each backfill's target: asset -> partition keys, oldest first."""
    targets = []
    for backfill in reversed(instance.get_backfills()):
        subsets = backfill.asset_backfill_data.target_subset.partitions_subsets_by_asset_key
        targets.append({k.to_user_string(): {str(p) for p in s.get_partition_keys()}
                        for k, s in subsets.items()})
    return targets


def test_the_jobs_select_their_stages(tmp_path):
    defs = definitions.build_defs(tiny_env(tmp_path))
    assert _selected(defs, "rank_new_dataset_job") == {
        "dataset_manifest", "dataset_embedding", "dataset_distance_row", "recommendation"}
    assert defs.resolve_job_def("rank_new_dataset_job").executor_def.name == "in_process"
    assert _selected(defs, "finetune_pair_job") == set(PAIR_ASSETS)
    assert _selected(defs, "refresh_knowledge_job") == {
        "imported_knowledge", "fid_edges", "knowledge_base", "matching_graph",
        "node2vec_embeddings", "ranker"}
    assert _selected(defs, "update_recommendation_job") == {"fid_edges", "recommendation"}
    assert defs.resolve_job_def("update_recommendation_job").executor_def.name == "in_process"
    assert _selected(defs, "loo_evaluation_job") == {"leave_one_out_evaluation"}
    assert _selected(defs, "sparsity_evaluation_job") == {"sparsity_evaluation"}
    graph = defs.resolve_asset_graph()
    pooled = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).pools}
    assert pooled & _selected(defs, "finetune_pair_job") == {"lora_checkpoint", "pair_samples"}


def test_a_landed_dataset_is_ranked_by_the_requested_run_and_evaluations_append(
        tmp_path, instance):
    kb = write_kb(make_demo_kb(seed=0, n_datasets=5, n_models=4), tmp_path / "kb")
    root = tmp_path / "root"
    defs = definitions.build_defs(tiny_env(root, MNC_KB_FOLDERS=str(kb)))
    refresh = defs.resolve_job_def("refresh_knowledge_job").execute_in_process(instance=instance)
    checks = {e.check_name: e.passed for e in refresh.get_asset_check_evaluations()}
    assert set(checks) == {"fid_edges_valid", "fid_edges_advisory"} and checks["fid_edges_valid"]
    assert instance.get_latest_materialization_event(dg.AssetKey("ranker")) is not None
    landing = root / "landing" / "pets"
    make_synthetic_dataset(landing, "shapes", n_images=10, seed=0, size=32)
    (landing / READY_MARKER).touch()
    sensor = defs.resolve_sensor_def("dataset_landing_sensor")
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources,
                                 instance_ref=instance.get_ref()) as context:
        result = sensor(context)
    (request,) = result.run_requests
    for added in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
    run = defs.resolve_job_def(request.job_name).execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=request.tags)
    assert run.success
    ranked = defs.resources["warehouse"].read_table("recommendations", {"dataset": "pets"})
    assert sorted(ranked["model"]) == [f"model-{k:02d}" for k in range(4)]
    assert sorted(ranked["rank"]) == [1, 2, 3, 4]
    assert (root / "datasets" / "pets" / "metadata.jsonl").is_file()  # the accepted copy
    for _ in range(2):
        loo = defs.resolve_job_def("loo_evaluation_job").execute_in_process(instance=instance)
        assert loo.success
    history = defs.resources["warehouse"].read_table("evaluations")
    assert history["run_id"].nunique() == 2 and set(history["protocol"]) == {"loo"}


def test_finetune_pair_job_trains_samples_and_scores_one_pair(tmp_path, instance):
    root = tmp_path / "root"
    model, defs = one_pair_world(root)
    add_models(instance, [model])
    add_datasets(instance, ["shapes-a"])
    manifest = [a for a in defs.assets if dg.AssetKey("dataset_manifest") in a.keys]
    dg.materialize(manifest, instance=instance, resources=defs.resources, partition_key="shapes-a")
    pair = pair_key(model, "shapes-a")
    result = defs.resolve_job_def("finetune_pair_job").execute_in_process(
        instance=instance, partition_key=pair)
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert done == set(PAIR_ASSETS)
    edges = defs.resources["warehouse"].read_table("computed_fid_edges")
    assert edges[["model", "dataset"]].values.tolist() == [[model, "shapes-a"]]
    assert np.isfinite(edges["clip_fid"]).all()


def test_the_missing_pairs_job_backfills_every_pair_without_a_computed_edge(tmp_path, instance):
    defs = definitions.build_defs(tiny_env(tmp_path))
    add_models(instance, ["m1", "m2"])
    add_datasets(instance, ["d1", "d2"])
    _plant_edge(defs, "m1", "d1")
    job = defs.resolve_job_def("finetune_missing_pairs_job")
    assert job.execute_in_process(instance=instance).success
    (target,) = _backfill_targets(instance)
    missing = {str(pair_key(m, d)) for m, d in (("m1", "d2"), ("m2", "d1"), ("m2", "d2"))}
    assert target == {name: missing for name in PAIR_ASSETS}
    # while that backfill is pending, running the job again submits nothing twice
    again = job.execute_in_process(instance=instance)
    assert again.output_for_node("submit_missing_pairs") is None
    assert len(instance.get_backfills()) == 1


def test_add_model_job_adds_the_partition_features_and_the_pairs_it_lacks(tmp_path, instance):
    defs = definitions.build_defs(tiny_env(tmp_path))
    add_datasets(instance, ["d1", "d2"])
    _plant_edge(defs, "tiny-sd15", "d2")  # e.g. measured before the model was re-added
    job = defs.resolve_job_def("add_model_job")
    config = {"ops": {"add_model_to_zoo": {"config": {"model": "tiny-sd15"}}}}
    assert job.execute_in_process(instance=instance, run_config=config).success
    assert instance.get_dynamic_partitions(MODEL) == ["tiny-sd15"]
    (target,) = _backfill_targets(instance)
    assert target == {"model_pipeline": {"tiny-sd15"}, "model_feature_row": {"tiny-sd15"},
                      **{name: {str(pair_key("tiny-sd15", "d1"))} for name in PAIR_ASSETS}}


def test_add_model_job_refuses_a_non_slug_id_and_adds_nothing(tmp_path, instance):
    defs = definitions.build_defs(tiny_env(tmp_path))
    config = {"ops": {"add_model_to_zoo": {"config": {"model": "Org/Model"}}}}
    result = defs.resolve_job_def("add_model_job").execute_in_process(
        instance=instance, run_config=config, raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "'Org/Model' is not a slug" in failure.event_specific_data.error.to_string()
    assert instance.get_dynamic_partitions(MODEL) == [] and instance.get_backfills() == []


def _recommend(defs: dg.Definitions, instance: dg.DagsterInstance, dataset: str,
               models: list[str]) -> None:
    """Recommendation rows (best first) and their materialisation, as recommendation leaves."""
    rows = pd.DataFrame({"dataset": dataset, "model": models, "rank": range(1, len(models) + 1),
                         "goodness": 0.0, "confidence": 0.5, "known_score": np.nan,
                         "ranker": "catboost-class", "seed": 0, "run_id": "r",
                         "computed_at": pd.Timestamp.now(), "near_best_probability": np.nan,
                         "in_shortlist": None, "cost_gpu_hours": np.nan,
                         "next_order": range(1, len(models) + 1), "stop": False})
    defs.resources["warehouse"].replace_partition("recommendations", {"dataset": dataset}, rows)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="recommendation", partition=dataset))


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, name: str, cursor=None):
    sensor = defs.resolve_sensor_def(name)
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources,
                                 instance_ref=instance.get_ref(), cursor=cursor) as context:
        return sensor(context)


def test_top_k_fine_tuning_requests_the_best_zoo_models_not_yet_measured(tmp_path, instance):
    defs = definitions.build_defs(tiny_env(tmp_path, **{FINETUNE_TOP_K_ENV: "2"}))
    assert defs.resolve_sensor_def("recommended_pairs_sensor").default_status == \
        dg.DefaultSensorStatus.RUNNING
    add_models(instance, ["a", "b", "c"])
    add_datasets(instance, ["pets"])
    _plant_edge(defs, "a", "pets")
    _recommend(defs, instance, "pets", ["imported-only", "c", "a", "b"])
    result = _tick(defs, instance, "recommended_pairs_sensor")
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [
        ("finetune_pair_job", str(pair_key("c", "pets")))]  # top 2 of the zoo: c, a (measured)
    assert _tick(defs, instance, "recommended_pairs_sensor", result.cursor).run_requests == []
    # an earlier version's cursor (the last recommendation's storage id) still counts
    (record,) = instance.fetch_materializations(dg.AssetKey("recommendation"), limit=1).records
    legacy = _tick(defs, instance, "recommended_pairs_sensor", str(record.storage_id))
    assert legacy.run_requests == []
    assert _tick(defs, instance, "recommended_pairs_sensor",
                 str(record.storage_id - 1)).run_requests == result.run_requests


def test_top_k_fine_tuning_is_off_by_default(tmp_path, instance):
    defs = definitions.build_defs(tiny_env(tmp_path))
    sensor = defs.resolve_sensor_def("recommended_pairs_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    add_models(instance, ["a"])
    add_datasets(instance, ["pets"])
    _recommend(defs, instance, "pets", ["a"])
    result = _tick(defs, instance, "recommended_pairs_sensor")
    assert isinstance(result, dg.SkipReason) and FINETUNE_TOP_K_ENV in result.skip_message


@pytest.mark.parametrize("name, job, cron", [
    ("nightly_loo_schedule", "loo_evaluation_job", NIGHTLY_LOO_CRON),
    ("weekly_sparsity_schedule", "sparsity_evaluation_job", WEEKLY_SPARSITY_CRON),
])
def test_the_evaluation_schedules_request_their_job_once_knowledge_exists(
        tmp_path, instance, name, job, cron):
    defs = definitions.build_defs(tiny_env(tmp_path))
    schedule = defs.resolve_schedule_def(name)
    assert schedule.job_name == job and schedule.cron_schedule == cron
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    skipped = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    assert skipped.run_requests == [] and "no knowledge_base" in skipped.skip_message
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="knowledge_base"))
    data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    (request,) = data.run_requests
    assert request.job_name in (None, job)


def _next_fires(cron: str, n: int) -> list[datetime]:
    from dagster._utils.schedules import cron_string_iterator

    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()  # a Wednesday
    times = cron_string_iterator(start, cron, "UTC")
    return [next(times) for _ in range(n)]


def test_the_crons_fire_nightly_and_weekly():
    assert NIGHTLY_LOO_CRON == "0 2 * * *" and WEEKLY_SPARSITY_CRON == "0 3 * * 0"
    nightly = _next_fires(NIGHTLY_LOO_CRON, 3)
    assert [(t.day, t.hour, t.minute) for t in nightly] == [(26, 2, 0), (27, 2, 0), (28, 2, 0)]
    weekly = _next_fires(WEEKLY_SPARSITY_CRON, 2)
    assert [(t.strftime("%A"), t.day, t.hour) for t in weekly] == [
        ("Sunday", 29, 3), ("Sunday", 6, 3)]
