"""Bad input through the platform: a clear error naming the id, file or row, nothing stored
changed, the other partitions unaffected; a bad FID edge never reaches the ranker."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

import definitions
from mnc_assets.partitions import add_datasets, add_models, pair_key
from mnc_core.kb.demo import make_demo_kb
from mnc_core.kb.store import write_kb
from mnc_core.t2i.synthetic_data import make_synthetic_dataset
from mnc_core.t2i.tiny_world import build_tiny_zoo
from tests.platform.conftest import Platform, one_pair_world, tiny_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
KNOWLEDGE = ("imported_knowledge", "fid_edges", "knowledge_base", "matching_graph",
             "node2vec_embeddings", "ranker")


def _home(tmp_path: Path) -> str:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return str(home)


def _failure_text(result: dg.ExecuteInJobResult) -> str:
    return "\n".join(e.event_specific_data.error.to_string()
                     for e in result.get_step_failure_events())


def _materialized(result: dg.ExecuteInJobResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


@pytest.fixture
def platform(tmp_path):
    """An empty platform whose knowledge is one imported demo knowledge base."""
    kb_folder = write_kb(make_demo_kb(seed=0, n_datasets=5, n_models=4), tmp_path / "kb")
    defs = definitions.build_defs(tiny_env(tmp_path / "root", MNC_KB_FOLDERS=str(kb_folder)))
    with dg.instance_for_test(temp_dir=_home(tmp_path)) as instance:
        yield Platform(tmp_path / "root", defs, instance, [], [])


def _plant(platform: Platform, rows: list[tuple[str, str, float]]) -> None:
    """Edges as if computed here (fid_edge's table), for the merge to pick up."""
    frame = pd.DataFrame(rows, columns=["model", "dataset", "clip_fid"]).assign(
        clip_fid_before=np.nan, kid=np.nan, cmmd=np.nan, n_samples=4, gpu_hours=0.01,
        computed_at=pd.Timestamp.now())
    platform.warehouse.append("computed_fid_edges", frame)


def test_the_platform_runs_on_imported_knowledge_alone(platform):
    platform.materialize(KNOWLEDGE)
    edges = platform.warehouse.read_table("fid_edges")
    assert len(edges) == 4 * 5 and edges["provenance"].str.startswith("imported:").all()
    assert len(platform.warehouse.read_table("feature_importances")) > 0


@pytest.mark.parametrize("planted, expectation", [
    (("photo-00", float("nan")), "score_not_null"),
    (("anime-00", -3.0), "score_non_negative"),
    (("dup", 5.0), "one_edge_per_pair"),
])
def test_a_bad_edge_fails_the_check_and_the_ranker_does_not_run(platform, planted, expectation):
    platform.materialize(KNOWLEDGE)
    add_datasets(platform.instance, ["photo-01"])
    platform.materialize(["recommendation"], "photo-01")
    before = platform.warehouse.read_table("recommendations")
    ranker_runs = len(platform.instance.fetch_materializations(dg.AssetKey("ranker"),
                                                               limit=10).records)
    dataset, value = planted
    rows = [("model-00", "anime-01", 5.0), ("model-00", "anime-01", 6.0)] if dataset == "dup" else [
        ("model-00", dataset, value)]
    _plant(platform, rows)
    result = platform.materialize(KNOWLEDGE, raise_on_error=False)
    assert not result.success
    assert _materialized(result) == {"imported_knowledge", "fid_edges"}  # nothing downstream
    check = next(e for e in result.get_asset_check_evaluations()
                 if e.check_name == "fid_edges_valid")
    assert not check.passed
    verdict = check.metadata["verdict"].value
    failing = [o for o in verdict["expectations"] if o["name"] == expectation][0]
    assert not failing["success"]
    named = {(r["model"], r["dataset"], r["provenance"]) for r in failing["failing_rows"]}
    assert ("model-00", rows[0][1], "computed") in named
    assert len(platform.instance.fetch_materializations(dg.AssetKey("ranker"),
                                                        limit=10).records) == ranker_runs
    # the recommendation refuses to use the failed edges and keeps the earlier rows
    again = platform.materialize(["recommendation"], "photo-01", raise_on_error=False)
    assert "fid_edges_valid" in _failure_text(again)
    pd.testing.assert_frame_equal(platform.warehouse.read_table("recommendations"), before)


def test_an_invalid_imported_folder_is_refused_naming_the_file(tmp_path, snapshot):
    kb_folder = write_kb(make_demo_kb(seed=0, n_datasets=3, n_models=3), tmp_path / "kb")
    edges = (kb_folder / "edges.csv").read_text().splitlines()
    cells = edges[2].split(",")
    edges[2] = ",".join([*cells[:2], "nan", *cells[3:]])
    (kb_folder / "edges.csv").write_text("\n".join(edges) + "\n")
    kept = snapshot(kb_folder)
    defs = definitions.build_defs(tiny_env(tmp_path / "root", MNC_KB_FOLDERS=str(kb_folder)))
    with dg.instance_for_test(temp_dir=_home(tmp_path)) as instance:
        result = Platform(tmp_path / "root", defs, instance, [], []).materialize(
            ["imported_knowledge"], raise_on_error=False)
    assert not result.success
    assert "edges.csv" in _failure_text(result)
    assert snapshot(kb_folder) == kept


def test_an_invalid_dataset_fails_its_partition_and_the_others_proceed(tmp_path, snapshot):
    root = tmp_path / "root"
    good = make_synthetic_dataset(root / "landing" / "good", "shapes", n_images=10, seed=0,
                                  size=32)
    (good / "corrupt.png").write_bytes(b"\x89PNG not really")
    with (good / "metadata.jsonl").open("a") as f:
        f.write(json.dumps({"file_name": "corrupt.png", "text": "a broken file"}) + "\n")
    make_synthetic_dataset(root / "landing" / "small", "glyphs", n_images=3, seed=1, size=32)
    landed = {name: snapshot(root / "landing" / name) for name in ("good", "small")}
    defs = definitions.build_defs(tiny_env(root))
    with dg.instance_for_test(temp_dir=_home(tmp_path)) as instance:
        platform = Platform(root, defs, instance, [], ["good", "small"])
        add_datasets(instance, ["good", "small"])
        failed = platform.materialize(["dataset_manifest"], "small", raise_on_error=False)
        assert "only 3 valid image-caption pairs" in _failure_text(failed)
        platform.materialize(["dataset_manifest"], "good")
        skipped = platform.warehouse.read_table("dataset_skipped_files")
    assert skipped[["dataset", "file_name"]].values.tolist() == [["good", "corrupt.png"]]
    files = platform.warehouse.read_table("dataset_files")
    assert set(files["dataset"]) == {"good"} and len(files) == 10
    assert (root / "datasets" / "good" / "corrupt.png").is_file()  # copied as it was
    assert not (root / "datasets" / "small").exists()
    for name, content in landed.items():
        assert snapshot(root / "landing" / name) == content  # never touched


def test_a_model_missing_a_component_is_named(tmp_path):
    root = tmp_path / "root"
    (model,) = build_tiny_zoo(root / "models", ["sd15"])
    for weights in (root / "models" / model / "vae").glob("*.safetensors"):
        weights.unlink()
    defs = definitions.build_defs(tiny_env(root))
    with dg.instance_for_test(temp_dir=_home(tmp_path)) as instance:
        add_models(instance, [model])
        result = Platform(root, defs, instance, [model], []).materialize(
            ["model_pipeline"], model, raise_on_error=False)
    assert "vae has no .safetensors weights" in _failure_text(result)


def test_a_pair_rematerialised_after_its_data_changed_is_refused(tmp_path, snapshot):
    root = tmp_path / "root"
    model, defs = one_pair_world(root)
    with dg.instance_for_test(temp_dir=_home(tmp_path)) as instance:
        add_models(instance, [model])
        add_datasets(instance, ["shapes-a"])
        platform = Platform(root, defs, instance, [model], ["shapes-a"])
        pair = pair_key(model, "shapes-a")
        platform.materialize(["lora_checkpoint"], pair)
        lora = platform.layout.lora_dir(model, "shapes-a")
        trained = snapshot(lora)
        meta = root / "datasets" / "shapes-a" / "metadata.jsonl"
        meta.write_text(meta.read_text().replace('"text": "', '"text": "changed: '))
        result = platform.materialize(["lora_checkpoint"], pair, raise_on_error=False)
    assert "trained on other data" in _failure_text(result)
    assert snapshot(lora) == trained


def test_automation_of_the_learners_waits_for_the_blocking_check(platform):
    """Across runs: `eager() & all_deps_blocking_checks_passed()` requests knowledge_base
    after a checked update of fid_edges, and not after one whose blocking check failed."""
    platform.materialize(KNOWLEDGE)
    selection = dg.AssetSelection.assets("knowledge_base")
    first = dg.evaluate_automation_conditions(platform.defs, platform.instance,
                                              asset_selection=selection)
    platform.materialize(["fid_edges"])  # an update that passes its checks
    passed = dg.evaluate_automation_conditions(platform.defs, platform.instance,
                                               asset_selection=selection, cursor=first.cursor)
    assert passed.get_num_requested(dg.AssetKey("knowledge_base")) == 1
    _plant(platform, [("model-00", "photo-00", float("nan"))])
    platform.materialize(["fid_edges"], raise_on_error=False)  # its blocking check fails
    failed = dg.evaluate_automation_conditions(platform.defs, platform.instance,
                                               asset_selection=selection, cursor=passed.cursor)
    assert failed.get_num_requested(dg.AssetKey("knowledge_base")) == 0


def test_the_sparsity_sweep_appends_its_levels_and_plots_the_curve(tmp_path):
    kb_folder = write_kb(make_demo_kb(seed=0, n_datasets=5, n_models=4), tmp_path / "kb")
    defs = definitions.build_defs(tiny_env(tmp_path / "root", MNC_KB_FOLDERS=str(kb_folder),
                                           MNC_WALKS="2", MNC_ITERATIONS="20"))
    with dg.instance_for_test(temp_dir=_home(tmp_path)) as instance:
        platform = Platform(tmp_path / "root", defs, instance, [], [])
        platform.materialize(KNOWLEDGE[:3])
        result = platform.materialize(["sparsity_evaluation"])
    history = platform.warehouse.read_table("evaluations")
    assert set(history["protocol"]) == {"sparsity"}
    assert {"all", "0.1", "0.9"} <= set(history["level"])
    curve = result.get_asset_materialization_events()[0].materialization.metadata
    assert "data:image/png;base64," in curve["sparsity_curve"].value
