"""The decisions through the real definitions: the stored near-best calibration, the
recommendation's shortlist, costs and sequential update, and the fine-tuning loop's
shortlist and sequential modes (`build_sensor_context` on an `instance_for_test`).

The world is an imported demo knowledge base (no training): `new` has no known edge,
`partial` one; the zoo is the KB's models (partitions only: the loop's fine-tuning runs
are requested, and their edges planted as fid_edge would write them).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import definitions
from mnc_assets.automation import FINETUNE_MODE_ENV, FINETUNE_TOP_K_ENV
from mnc_assets.partitions import add_datasets, add_models, pair_key, pair_of_key
from mnc_core.cli import app
from mnc_core.kb.demo import make_demo_kb
from mnc_core.kb.store import read_kb, write_kb
from tests.platform.conftest import Platform, tiny_env

pytestmark = pytest.mark.timeout(900)
KNOWLEDGE = ("imported_knowledge", "fid_edges", "knowledge_base")
LOOP = "recommended_pairs_sensor"


@dataclass
class World:
    """The platform on the demo KB, the KB as written, and what ran before a calibration."""

    platform: Platform
    kb_folder: Path
    truth: pd.DataFrame  # every demo edge, also those left out of the imported KB
    new: str
    partial: str
    uncalibrated_rows: pd.DataFrame
    uncalibrated_metadata: dict

    def defs(self, **env: str) -> dg.Definitions:
        return definitions.build_defs(tiny_env(self.platform.root,
                                               MNC_KB_FOLDERS=str(self.kb_folder), **env))

    def rows(self, dataset: str) -> pd.DataFrame:
        return self.platform.warehouse.read_table("recommendations", {"dataset": dataset}) \
            .set_index("model")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("decisions")
    demo = make_demo_kb(seed=0, n_datasets=6, n_models=4)
    new, partial = demo.datasets[0], demo.datasets[1]
    edges = demo.edges
    kept = (edges["dataset"] != new) & (
        (edges["dataset"] != partial) | (edges["model"] == demo.models[0]))
    kb_folder = write_kb(type(demo)(**{**demo.__dict__, "edges": edges[kept]}), base / "kb")
    defs = definitions.build_defs(tiny_env(base / "root", MNC_KB_FOLDERS=str(kb_folder)))
    (base / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(base / "home")) as instance:
        platform = Platform(base / "root", defs, instance, list(demo.models), list(demo.datasets))
        add_models(instance, demo.models)
        add_datasets(instance, [new, partial])
        platform.materialize(KNOWLEDGE)
        before = platform.materialize(["recommendation"], new)  # no calibration yet
        metadata = before.get_asset_materialization_events()[0].materialization.metadata
        rows = platform.warehouse.read_table("recommendations", {"dataset": new})
        platform.materialize(["near_best_calibration"])
        yield World(platform, kb_folder, edges, new, partial, rows, metadata)


def _settings(world: World):
    return world.platform.defs.resources["engine"]


def test_the_calibration_is_stored_as_json_and_is_the_engines(world):
    from mnc_core.engine.shortlist import calibrate, calibration_pairs

    path = world.platform.layout.calibration_path()
    stored = json.loads(path.read_text())  # plain JSON, no pickle
    engine = _settings(world)
    current = read_kb(world.platform.layout.knowledge_dir("current"))
    expected = calibrate(calibration_pairs(current, engine.settings(), engine.seed))
    np.testing.assert_allclose(stored["x_thresholds"], expected["map"].X_thresholds_)
    np.testing.assert_allclose(stored["y_thresholds"], expected["map"].y_thresholds_)
    assert stored["first_near_best"] == expected["first_near_best"]
    # `new` has no edge and `partial` one: neither can be left out, the other four are
    assert stored["datasets"] == 4 and stored["pairs"] == 4 * 4
    assert len(stored["points"]["raw"]) == 16  # what a recommendation refits without its own
    assert set(stored["points"]["dataset"]) == set(expected["points"]["dataset"])
    event = world.platform.instance.get_latest_materialization_event(
        dg.AssetKey("near_best_calibration"))
    metadata = event.asset_materialization.metadata
    assert metadata["brier"].value == pytest.approx(expected["brier"])
    assert metadata["ece"].value == pytest.approx(expected["ece"])
    assert metadata["pairs"].value == 16 and metadata["datasets"].value == 4
    assert "data:image/png;base64," in metadata["reliability_plot"].value
    assert metadata["path"].value == str(path)


def test_without_a_calibration_the_recommendation_succeeds_with_null_decisions(world):
    rows = world.uncalibrated_rows
    assert sorted(rows["rank"]) == [1, 2, 3, 4]
    assert rows["near_best_probability"].isna().all() and rows["in_shortlist"].isna().all()
    assert rows["cost_gpu_hours"].notna().all()  # costs come from the KB, not the calibration
    metadata = world.uncalibrated_metadata
    assert "no near_best_calibration materialised yet" in metadata["notes"].value
    assert metadata["shortlist"].value.startswith("none")


def _expected_shortlist(rows: pd.DataFrame, first_near_best: list[int], target: float):
    """The smallest rank prefix whose leave-one-out share of first near-best reaches target."""
    order = rows.sort_values("rank").index.tolist()
    for size in range(1, len(order) + 1):
        if np.mean(np.asarray(first_near_best) <= size) >= target:
            return order[:size]
    return order


@pytest.mark.parametrize("target", [None, "0.5"])
def test_a_recommendation_reads_the_stored_calibration(world, target):
    from mnc_core.engine.shortlist import raw_confidence

    env = {"MNC_SHORTLIST_TARGET": target} if target else {}
    platform = Platform(world.platform.root, world.defs(**env), world.platform.instance, [], [])
    result = platform.materialize(["recommendation"], world.new)
    rows = world.rows(world.new)
    stored = json.loads(platform.layout.calibration_path().read_text())
    raw = raw_confidence(rows["rank"])
    np.testing.assert_allclose(
        rows["near_best_probability"],
        np.interp(raw, stored["x_thresholds"], stored["y_thresholds"]))
    short = _expected_shortlist(rows, stored["first_near_best"], float(target or 0.9))
    assert sorted(rows.index[rows["in_shortlist"].astype(bool)]) == sorted(short)
    costs = read_kb(world.kb_folder).edges.groupby("model")["cost"].median()  # per model
    np.testing.assert_allclose(rows["cost_gpu_hours"], costs.reindex(rows.index))
    # nothing known of `new`: fine-tune in predicted order, never "stop"
    assert rows["next_order"].tolist() == rows["rank"].tolist() and not rows["stop"].any()
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["shortlist_models"].value == len(short)
    assert metadata["gpu_hours_saved"].value == pytest.approx(
        rows["cost_gpu_hours"].sum() - rows.loc[short, "cost_gpu_hours"].sum())
    assert metadata["next_model"].value == rows["rank"].idxmin()
    assert metadata["notes"].value == "none"
    types = {c.name: c.type for c in metadata["dagster/column_schema"].value.columns}
    assert (types["in_shortlist"], types["next_order"], types["stop"]) == ("bool", "int", "bool")
    # the command the metadata gives reproduces the shortlist from the same calibration
    out = platform.root / f"rank-{target}.json"
    command = shlex.split(metadata["reproduce"].value)
    assert command[:2] == ["mnc", "rank"] and "--calibration" in command
    ranked = CliRunner().invoke(app, [*command[1:], "--json", str(out)])
    assert ranked.exit_code == 0, ranked.output
    again = json.loads(out.read_text())["shortlist"]
    assert sorted(again["models"]) == sorted(short)
    np.testing.assert_allclose(
        pd.Series(again["near_best_probability"]).reindex(rows.index),
        rows["near_best_probability"])


def _plant_edge(world: World, model: str, dataset: str) -> None:
    """The demo's true score of the pair, written and announced as fid_edge does."""
    truth = world.truth.set_index(["model", "dataset"]).loc[(model, dataset)]
    row = pd.DataFrame({"model": [model], "dataset": [dataset], "clip_fid": [truth["score"]],
                        "clip_fid_before": [truth["score_before"]], "kid": [np.nan],
                        "cmmd": [np.nan], "n_samples": [8], "gpu_hours": [truth["cost"]],
                        "computed_at": [pd.Timestamp.now()]})
    world.platform.warehouse.append("computed_fid_edges", row)
    world.platform.instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="fid_edge", partition=str(pair_key(model, dataset))))


class Loop:
    """The fine-tuning sensor's ticks, the cursor carried from one to the next."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def tick(self):
        sensor = self.defs.resolve_sensor_def(LOOP)
        with dg.build_sensor_context(instance=self.instance, definitions=self.defs,
                                     resources=self.defs.resources, cursor=self.cursor,
                                     instance_ref=self.instance.get_ref()) as context:
            result = sensor(context)
        self.cursor = result.cursor
        return result

    def run(self, request: dg.RunRequest) -> dg.ExecuteInJobResult:
        job = self.defs.resolve_job_def(request.job_name)
        return job.execute_in_process(instance=self.instance, partition_key=request.partition_key)


def _requests(result, dataset: str | None = None) -> list[tuple[str, str]]:
    """(job, partition) of a tick's requests, only those for `dataset` when given (the loop
    sees every dataset's recommendations; earlier tests ranked other datasets)."""
    def of(key: str) -> str:
        return key if "|" not in key else pair_of_key(key)[1]

    return [(r.job_name, r.partition_key) for r in result.run_requests or []
            if dataset is None or of(r.partition_key) == dataset]


@pytest.mark.parametrize("stop_probability, reason", [
    (None, "near-best probability of the tried models"),  # the default 0.9: stops early
    ("1", "every model is tried"),  # from there on, only certainty stops it
])
def test_the_sequential_loop_fine_tunes_the_next_model_re_ranks_and_stops(
        world, stop_probability, reason):
    from mnc_core.engine.sequential import next_pick
    from mnc_core.engine.shortlist import (
        calibrated_prior_share,
        calibration_for,
        calibration_from_json,
    )

    extra = {"MNC_STOP_PROBABILITY": stop_probability} if stop_probability else {}
    defs = world.defs(**{FINETUNE_MODE_ENV: "sequential"}, **extra)
    assert defs.resolve_sensor_def(LOOP).default_status == dg.DefaultSensorStatus.RUNNING
    platform = Platform(world.platform.root, defs, world.platform.instance, [], [])
    dataset = world.partial
    platform.materialize(["recommendation"], dataset)
    tried = world.rows(dataset).dropna(subset=["known_score"]).index.tolist()
    assert tried  # `partial` has known edges (the first case: one)
    rounds = 0
    loop = Loop(defs, world.platform.instance)
    while True:
        rows = world.rows(dataset)
        assert rows.loc[tried, "next_order"].isna().all()  # tried models are not candidates
        # the recommendation's update is `mnc next` on the knowledge it was made from
        engine = defs.resources["engine"]
        kb = read_kb(world.platform.layout.knowledge_dir(f"for-{dataset}"))
        stored = calibration_from_json(json.loads(
            world.platform.layout.calibration_path().read_text()))
        share = calibrated_prior_share(calibration_for(stored, dataset))  # never its own
        pick = next_pick(kb, dataset, engine.settings(), engine.seed,
                         stop_probability=engine.stop_probability, prior_share=share)
        records = world.platform.instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("recommendation"), asset_partitions=[dataset]), limit=1).records
        metadata = records[0].asset_materialization.metadata
        assert metadata["prior_share"].value == pytest.approx(share)
        assert metadata["prior_baseline"].value == pick["prior_baseline"]
        if rounds == 0:  # the command the metadata gives reproduces the pick
            out = world.platform.root / "next.json"
            command = shlex.split(metadata["reproduce_next"].value)
            assert command[:2] == ["mnc", "next"] and "--calibration" in command
            result = CliRunner().invoke(app, [*command[1:], "--json", str(out)])
            assert result.exit_code == 0, result.output
            again = json.loads(out.read_text())
            assert again["next"] == pick["next"] and again["prior_share"] == pytest.approx(share)
        assert sorted(t["model"] for t in pick["tried"]) == sorted(tried)
        assert rows.dropna(subset=["next_order"]).sort_values("next_order").index.tolist() == \
            [c["model"] for c in pick["candidates"]]
        assert rows["stop"].all() == pick["stop"]
        tick = loop.tick()
        if pick["stop"]:
            break
        # exactly one pair: the recommendation's next model
        assert _requests(tick, dataset) == [
            ("finetune_pair_job", str(pair_key(pick["next"], dataset)))]
        assert _requests(loop.tick()) == []  # nothing twice, nothing else while it trains
        _plant_edge(world, pick["next"], dataset)
        tried.append(pick["next"])
        rounds += 1
        (update,) = loop.tick().run_requests  # the edge landed: re-rank the dataset first
        assert (update.job_name, update.partition_key) == ("update_recommendation_job", dataset)
        run = loop.run(update)
        assert run.success
        done = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
        assert done == {"fid_edges", "recommendation"}
        assert {e.check_name for e in run.get_asset_check_evaluations()} >= {"fid_edges_valid"}
        assert len(tried) <= len(world.platform.models)
    assert rounds >= 1 and any(reason in r for r in pick["stop_reasons"]), pick
    assert _requests(tick, dataset) == [] and "says stop" in tick.skip_reason.skip_message
    assert _requests(loop.tick()) == []


def test_the_shortlist_mode_fine_tunes_the_shortlisted_zoo_models_capped_by_top_k(world):
    platform = Platform(world.platform.root, world.defs(), world.platform.instance, [], [])
    platform.materialize(["recommendation"], world.new)
    rows = world.rows(world.new).sort_values("rank")
    shortlisted = rows.index[rows["in_shortlist"].astype(bool)].tolist()
    for cap, expected in (("0", shortlisted), ("1", shortlisted[:1])):
        defs = world.defs(**{FINETUNE_MODE_ENV: "shortlist", FINETUNE_TOP_K_ENV: cap})
        loop = Loop(defs, world.platform.instance)
        assert _requests(loop.tick(), world.new) == [
            ("finetune_pair_job", str(pair_key(m, world.new))) for m in expected]


@pytest.mark.parametrize("name, value, message", [
    (FINETUNE_MODE_ENV, "greedy", "is not one of top-k, shortlist, sequential"),
    ("MNC_SHORTLIST_TARGET", "1.5", "is not a probability in (0, 1]"),
    ("MNC_STOP_PROBABILITY", "often", "is not a probability in (0, 1]"),
])
def test_bad_decision_settings_are_refused_by_name(tmp_path, name, value, message):
    with pytest.raises(ValueError) as refused:
        definitions.build_defs(tiny_env(tmp_path, **{name: value}))
    assert f"{name}={value!r} {message}" in str(refused.value)


def test_a_dataset_in_the_calibration_is_not_calibrated_on_its_own_results(world):
    """A KB dataset with edges is one of the calibration's leave-one-out folds: its
    recommendation's probabilities come from the map refitted without its points."""
    from mnc_core.engine.shortlist import calibration_for, calibration_from_json, raw_confidence

    stored = calibration_from_json(json.loads(world.platform.layout.calibration_path()
                                              .read_text()))
    positions = np.linspace(0.0, 1.0, len(world.platform.models))  # the raw confidences

    def shift(dataset: str) -> float:
        own = calibration_for(stored, dataset)
        return float(np.abs(np.interp(positions, own["x_thresholds"], own["y_thresholds"])
                            - np.interp(positions, stored["x_thresholds"],
                                        stored["y_thresholds"])).max())

    dataset = max(stored["points"]["dataset"].unique(), key=shift)
    assert shift(dataset) > 0.01  # its own points do move the map
    add_datasets(world.platform.instance, [dataset])
    world.platform.materialize(["recommendation"], dataset)
    rows = world.rows(dataset)
    own = calibration_for(stored, dataset)
    assert len(own["points"]) < len(stored["points"])  # its points are left out
    np.testing.assert_allclose(
        rows["near_best_probability"],
        np.interp(raw_confidence(rows["rank"]), own["x_thresholds"], own["y_thresholds"]))
