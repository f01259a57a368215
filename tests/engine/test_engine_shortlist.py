"""Calibration (Brier, ECE) on hand cases and the shortlist logic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine.shortlist import brier, calibrate, ece, raw_confidence, shortlist


def test_brier_and_ece_by_hand():
    p = np.array([0.9, 0.1, 0.8, 0.3])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    assert brier(p, y) == pytest.approx((0.01 + 0.01 + 0.64 + 0.49) / 4)
    # bins: 0.1 -> [0.1, 0.2), 0.3 -> [0.3, 0.4), 0.8 -> [0.8, 0.9), 0.9 -> [0.9, 1]
    assert ece(p, y) == pytest.approx((0.1 + 0.1 + 0.8 + 0.7) / 4)
    assert ece(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.0  # 1.0 in the last bin
    assert ece(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == 0.0  # calibrated on average


def test_raw_confidence():
    assert raw_confidence(pd.Series([1, 2, 3])).tolist() == [1.0, 0.5, 0.0]


def test_calibrate_records_first_near_best():
    pairs = pd.DataFrame({
        "dataset": ["d1"] * 3 + ["d2"] * 3,
        "model": ["a", "b", "c"] * 2,
        "raw": [1.0, 0.5, 0.0] * 2,
        "near": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    })
    result = calibrate(pairs)
    assert sorted(result["first_near_best"]) == [1, 2]
    assert result["map"].predict([1.0, 0.0]).tolist() == pytest.approx([0.5, 0.0])


def test_shortlist_by_rank_and_by_cost():
    table = pd.DataFrame({"rank": [1, 2, 3, 4]}, index=["a", "b", "c", "d"])
    probability = pd.Series({"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.05})
    costs = pd.Series({"a": 10.0, "b": 1.0, "c": 1.0, "d": 1.0})
    # leave-one-out: the first near-best came 1st, 1st, 2nd, 3rd, 5th -> 3 reach 0.8
    out = shortlist(table, probability, costs, target=0.8, first_near_best=[1, 1, 2, 3, 5])
    assert out["models"] == ["a", "b", "c"] and out["probability"] == pytest.approx(0.8)
    assert out["gpu_hours"] == 12.0 and out["gpu_hours_saved"] == 1.0
    cheap = shortlist(table, probability, costs, target=0.9, by_cost=True)
    # per GPU hour: b 0.3, c 0.15, then a and d tie at 0.05 (rank order: a); sums 0.95
    assert cheap["models"] == ["b", "c", "a"] and cheap["reached"]
    assert cheap["probability"] == pytest.approx(0.95)
    unreachable = shortlist(table, probability * 0.1, None, target=0.9)
    assert not unreachable["reached"] and "gpu_hours" not in unreachable
    with pytest.raises(ValueError):
        shortlist(table, probability, None, by_cost=True)


def test_rank_shortlist_cli(small_kb, tmp_path):
    import json

    from typer.testing import CliRunner

    from mnc_core.cli import app
    from mnc_core.kb.store import write_kb

    kb_dir = write_kb(small_kb, tmp_path / "kb")
    out = tmp_path / "rank.json"
    target = small_kb.datasets[0]
    result = CliRunner().invoke(
        app, ["rank", "--kb", str(kb_dir), "--dataset", target, "--shortlist", "--json",
              str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert [r["rank"] for r in document["ranking"]] == list(range(1, 6))  # unchanged keys
    short = document["shortlist"]
    assert short["models"] and set(short["reliability"]) == {"brier", "ece", "pairs", "datasets"}
    assert short["gpu_hours_saved"] == pytest.approx(5.0 - len(short["models"]))  # cost 1 each
    assert "shortlist (rank)" in result.output

    # `mnc calibrate` stores the leave-one-out once; `mnc rank --calibration` reads it
    # and gives the per-call shortlist (the dataset's own points left out) in a
    # fraction of the time
    stored = tmp_path / "calibration.json"
    made = CliRunner().invoke(app, ["calibrate", "--kb", str(kb_dir), "--json", str(stored)])
    assert made.exit_code == 0, made.output
    calibration = json.loads(stored.read_text())
    assert calibration["datasets"] == len(small_kb.datasets) and calibration["models"] == 5
    assert f"wrote {stored}: {len(small_kb.datasets)} datasets" in made.output
    again = tmp_path / "again.json"
    read = CliRunner().invoke(
        app, ["rank", "--kb", str(kb_dir), "--dataset", target, "--calibration", str(stored),
              "--json", str(again)])
    assert read.exit_code == 0, read.output
    from_file = json.loads(again.read_text())
    assert from_file["calibration"] == str(stored) and "may be stale" not in read.output
    for key in ("models", "probability", "gpu_hours_saved"):
        assert from_file["shortlist"][key] == short[key], key
    assert from_file["shortlist"]["near_best_probability"] == pytest.approx(
        short["near_best_probability"])
    other_seed = CliRunner().invoke(
        app, ["rank", "--kb", str(kb_dir), "--dataset", target, "--calibration", str(stored),
              "--seed", "1"])
    assert other_seed.exit_code == 0, other_seed.output
    assert f"{stored} may be stale: it was fitted with seed 0, not 1" in other_seed.output


def test_stored_calibration_predicts_as_the_isotonic_map():
    import json

    from mnc_core.engine.shortlist import (
        calibration_from_json,
        calibration_to_json,
        near_best_from_raw,
    )

    rng = np.random.default_rng(3)
    raw = rng.uniform(0.0, 1.0, 60)
    pairs = pd.DataFrame({"dataset": np.repeat([f"d{k}" for k in range(6)], 10),
                          "model": [f"m{k}" for k in range(10)] * 6, "raw": raw,
                          "near": (rng.uniform(size=60) < raw ** 2).astype(float)})
    result = calibrate(pairs)
    stored = calibration_from_json(json.loads(json.dumps(calibration_to_json(result))))
    grid = np.concatenate([np.linspace(-0.5, 1.5, 401), raw])  # outside [0, 1]: clipped
    np.testing.assert_allclose(near_best_from_raw(stored, grid), result["map"].predict(grid))
    assert stored["first_near_best"] == result["first_near_best"]
    assert stored["brier"] == result["brier"] and stored["pairs"] == 60
    curve = stored["reliability_curve"]
    assert sum(b["count"] for b in curve) == 60
    assert all(0.0 <= b["frequency"] <= 1.0 for b in curve)


def test_a_broken_stored_calibration_is_refused_by_name():
    from mnc_core.engine.shortlist import calibration_from_json

    good = {"format": 1, "x_thresholds": [0.0, 1.0], "y_thresholds": [0.1, 0.6]}
    assert calibration_from_json(good)["y_thresholds"].tolist() == [0.1, 0.6]
    with pytest.raises(ValueError, match="format"):
        calibration_from_json({**good, "format": 0})
    with pytest.raises(ValueError, match="a JSON object expected, not list"):
        calibration_from_json([good])
    with pytest.raises(ValueError, match="2 x and 1 y"):
        calibration_from_json({**good, "y_thresholds": [0.1]})
    with pytest.raises(ValueError, match="non-decreasing"):
        calibration_from_json({**good, "y_thresholds": [0.6, 0.1]})
    points = {"dataset": ["a", "b"], "raw": [0.2, 0.9], "near": [0.0, 1.0]}
    assert calibration_from_json({**good, "points": points})["points"]["raw"].tolist() == \
        [0.2, 0.9]
    with pytest.raises(ValueError, match="different lengths"):
        calibration_from_json({**good, "points": {**points, "near": [0.0]}})
    with pytest.raises(ValueError, match="0 or 1"):
        calibration_from_json({**good, "points": {**points, "near": [0.0, 0.5]}})


def test_a_dataset_is_never_calibrated_on_its_own_results():
    import json

    from mnc_core.engine.shortlist import (
        calibration_for,
        calibration_from_json,
        calibration_to_json,
        near_best_from_raw,
    )

    rng = np.random.default_rng(5)
    raw = rng.uniform(0.0, 1.0, 40)
    pairs = pd.DataFrame({"dataset": np.repeat(["d0", "d1", "d2", "d3"], 10),
                          "model": [f"m{k}" for k in range(10)] * 4, "raw": raw,
                          "near": (rng.uniform(size=40) < raw).astype(float)})
    pairs.loc[pairs["dataset"] == "d0", "near"] = 1.0  # d0: everything near-best
    stored = calibration_from_json(json.loads(json.dumps(calibration_to_json(calibrate(pairs)))))
    without = calibration_for(stored, "d0")
    expected = calibrate(pairs[pairs["dataset"] != "d0"])
    np.testing.assert_allclose(without["x_thresholds"], expected["map"].X_thresholds_)
    np.testing.assert_allclose(without["y_thresholds"], expected["map"].y_thresholds_)
    assert without["first_near_best"] == expected["first_near_best"]
    # d0's all-near-best points had lifted the low end of the map
    low = np.array([0.05, 0.1])
    assert np.all(near_best_from_raw(without, low) < near_best_from_raw(stored, low))
    assert calibration_for(stored, "elsewhere") is stored  # no points of it: as stored
    old = {k: v for k, v in stored.items() if k != "points"} | {"points": None}
    assert calibration_for(old, "d0") is old  # written before points were stored


def test_the_stored_calibration_fits_the_sequential_prior_share_without_the_dataset():
    """The calibration keeps each point's share terms; the share of a dataset's sequential
    prior is fitted on the other datasets' terms only, and a calibration written before
    the terms were stored gives the default share."""
    import json

    from mnc_core.engine.score_posterior import PRIOR_SHARE, fit_prior_share
    from mnc_core.engine.shortlist import (
        calibrated_prior_share,
        calibration_for,
        calibration_from_json,
        calibration_to_json,
    )

    pairs = pd.DataFrame({"dataset": np.repeat(["d0", "d1", "d2"], 2),
                          "model": ["a", "b"] * 3, "raw": [1.0, 0.0] * 3,
                          "near": [1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
                          "share_num": [0.9, 0.3, 0.1, 0.1, 0.2, 0.2],
                          "share_den": [1.0, 0.2, 0.5, 0.5, 0.4, 0.4]})
    document = calibration_to_json(calibrate(pairs))
    assert document["prior_share"] == pytest.approx((0.9 + 0.3 + 0.1 + 0.1 + 0.2 + 0.2) / 3.0)
    stored = calibration_from_json(json.loads(json.dumps(document)))
    assert calibrated_prior_share(stored) == pytest.approx(document["prior_share"])
    rest = pairs[pairs["dataset"] != "d0"]
    assert calibrated_prior_share(calibration_for(stored, "d0")) == pytest.approx(
        fit_prior_share([rest]))  # 0.6 / 1.8: d0's terms left out
    assert calibrated_prior_share(calibration_for(stored, "d0")) == pytest.approx(1 / 3)
    old_points = {c: document["points"][c] for c in ("dataset", "raw", "near")}
    old = calibration_from_json({**document, "points": old_points})
    assert calibrated_prior_share(calibration_for(old, "d0")) == PRIOR_SHARE
    with pytest.raises(ValueError, match="share_num and share_den"):
        calibration_from_json({**document, "points": {**old_points, "share_num": [0.1] * 6}})
    with pytest.raises(ValueError, match="finite"):
        calibration_from_json({**document, "points": {
            **document["points"], "share_den": [-1.0] * 6}})


def test_stale_calibration_names_what_differs(small_kb):
    """A stored calibration fitted on another KB or ranking is named for what differs."""
    from mnc_core.engine.shortlist import stale_calibration

    points = pd.DataFrame({"dataset": [small_kb.datasets[0], "gone"]})
    fits = {"models": len(small_kb.models), "ranker": "catboost-class", "seed": 0,
            "points": points.iloc[:1]}
    assert stale_calibration(fits, small_kb, "catboost-class", 0) == []
    reasons = stale_calibration({**fits, "models": 7, "points": points}, small_kb,
                                "catboost-regression", 0)
    assert reasons == [f"it was fitted on 7 models, the KB has {len(small_kb.models)}",
                       "it was fitted with ranker catboost-class, not catboost-regression",
                       "1 of its datasets are not in the KB (e.g. gone)"]
