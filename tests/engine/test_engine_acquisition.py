"""Acquisition: expected gains by hand, batches, the simulation's bookkeeping, the
evaluation against leave-one-out, and `mnc acquire` end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mnc_core.cli import app
from mnc_core.engine import acquisition as acq
from mnc_core.engine.inputs import BOTH
from mnc_core.engine.protocols import leave_one_out
from mnc_core.kb.store import write_kb

# accuracy: d1 ranks a > b > c, d2 the reverse; d3 knows b beats c (as d1 says), not a
SCORES = pd.DataFrame(
    {"a": [3.0, 1.0, np.nan], "b": [2.0, 2.0, 2.5], "c": [1.0, 3.0, 1.0]},
    index=["d1", "d2", "d3"],
)


def test_gain_by_hand():
    gains = acq.acquisition_gains(SCORES, True)
    assert gains[["model", "dataset", "known"]].values.tolist() == [["a", "d3", 2]]
    # d1 and d2 weigh 0.9^2 : 0.1^2 after "b beats c"; a lifts d3's best (b) by 0.5
    # in d1 (goodness 1 vs 0.5) and by nothing in d2 (0 vs 0.5)
    assert gains["expected_gain"].iloc[0] == pytest.approx(0.5 * 0.81 / 0.82)


def test_no_lift_is_a_zero_gain_and_ties_go_to_the_better_rated_model():
    # every scenario ranks a > b > c and d3 already knows a: nothing can lift it
    scores = pd.DataFrame({"a": [3.0, 3.0, 3.0], "b": [2.0, 2.0, np.nan],
                           "c": [1.0, 1.0, np.nan]}, index=["d1", "d2", "d3"])
    gains = acq.acquisition_gains(scores, True)
    assert gains["model"].tolist() == ["b", "c"] and (gains["expected_gain"] == 0.0).all()
    assert gains["mean_goodness"].tolist() == pytest.approx([0.5, 0.0])


def test_a_dataset_the_kb_knows_nothing_of_comes_first():
    scores = pd.concat([SCORES, pd.DataFrame({"a": [np.nan], "b": [np.nan], "c": [np.nan]},
                                             index=["d4"])])
    gains = acq.acquisition_gains(scores, True)
    first = gains.iloc[0]
    # d4: the posterior mean goodness over d1, d2, d3 (d3's unknown a counts 0.5):
    # b (0.5 + 0.5 + 1) / 3 is the largest, above d3's 0.49
    assert (first["dataset"], first["model"]) == ("d4", "b")
    assert first["expected_gain"] == pytest.approx(2 / 3)
    assert len(gains) == 4 and gains["expected_gain"].is_monotonic_decreasing


def test_candidates_restrict_the_pairs():
    scores = SCORES.copy()
    scores.loc["d1", "c"] = np.nan
    every = acq.acquisition_gains(scores, True)
    assert set(zip(every["model"], every["dataset"], strict=True)) == {("a", "d3"), ("c", "d1")}
    only = acq.acquisition_gains(scores, True, candidates=[("c", "d1")])
    assert only[["model", "dataset"]].values.tolist() == [["c", "d1"]]


def test_propose_spreads_a_batch_over_datasets():
    gains = pd.DataFrame({"model": ["a", "b", "c", "a"], "dataset": ["x", "x", "x", "y"],
                          "expected_gain": [0.9, 0.8, 0.7, 0.1], "mean_goodness": 0.5,
                          "known": [0, 0, 0, 3]})
    two = acq.propose(gains, 2)
    assert two[["model", "dataset"]].values.tolist() == [["a", "x"], ["a", "y"]]
    three = acq.propose(gains, 3)  # one dataset runs out: the rest by gain
    assert three[["model", "dataset"]].values.tolist() == [["a", "x"], ["b", "x"], ["a", "y"]]
    assert acq.propose(gains, 2, per_dataset=2)["dataset"].tolist() == ["x", "x"]
    with pytest.raises(ValueError, match="at least 1"):
        acq.propose(gains, 0)


def test_simulation_acquires_every_hidden_edge_once(small_kb):
    result = acq.simulate(small_kb, seed=1, batch_share=0.2, method="overall")
    total = len(small_kb.edges)
    assert result["start"] == round(0.3 * total) and result["edges"] == total
    for policy, run in result["policies"].items():
        curve = run["curve"]
        assert curve[0]["acquired"] == 0 and curve[-1]["edges"] == total, policy
        steps = np.diff([p["edges"] for p in curve])
        assert (steps > 0).all() and (steps <= result["batch"]).all()
        # all edges known at the end: the dense KB's figures, exactly
        assert curve[-1]["regret@1"] == pytest.approx(result["dense"]["regret@1"])
        assert run["edges_to_dense"] == acq.edges_to_reach(curve, result["dense"]["regret@1"])
    again = acq.simulate(small_kb, seed=1, batch_share=0.2, method="overall")
    assert again["policies"] == result["policies"]
    with pytest.raises(ValueError, match="unknown acquisition policy"):
        acq.simulate(small_kb, policies=("greedy",), method="overall")
    with pytest.raises(ValueError, match="start share"):
        acq.simulate(small_kb, start_share=1.0, method="overall")


def test_a_callers_chooser_is_simulated_on_what_is_still_hidden(small_kb):
    seen = []

    def last_first(hidden, n):  # the hidden edges with the largest index first
        seen.append((set(hidden.index), n))
        return hidden.index[::-1][:n]

    result = acq.simulate(small_kb, seed=1, batch_share=0.2, method="overall",
                          policies=(), choosers={"last": last_first})
    assert list(result["policies"]) == ["last"]
    start = acq.start_edges(small_kb.edges, 0.3, 1)
    hidden = set(small_kb.edges.index) - set(start.index)
    for offered, n in seen:  # each call sees exactly what earlier batches left hidden
        assert offered == hidden and n == min(result["batch"], len(hidden))
        hidden -= set(sorted(offered)[::-1][:n])
    assert not hidden
    curve = result["policies"]["last"]["curve"]
    assert len(curve) == len(seen) + 1 and curve[-1]["edges"] == len(small_kb.edges)


def test_policy_batch_is_the_proposal_on_the_start(small_kb):
    start = acq.start_edges(small_kb.edges, 0.3, 0)
    hidden = small_kb.edges.drop(index=start.index)
    scores = acq.score_table(start, small_kb.models, small_kb.datasets)
    pool = list(zip(hidden["model"], hidden["dataset"], strict=True))
    proposed = acq.propose(acq.acquisition_gains(scores, False, pool), 5)
    # the datasets with the fewest known scores are served first
    assert proposed["known"].max() <= scores.notna().sum(axis=1).median()
    assert set(zip(proposed["model"], proposed["dataset"], strict=True)) <= set(pool)


def test_evaluation_on_every_edge_is_leave_one_out(small_kb, fast_settings):
    targets = list(small_kb.datasets[:2])
    mine = acq.evaluate_knowledge(small_kb, small_kb.edges, targets, "mnc", fast_settings, 0)
    loo = leave_one_out(small_kb, fast_settings, 0, targets, {"mnc": BOTH})
    for target in targets:
        expected = loo["methods"]["mnc"]["per_dataset"][target]
        assert mine["per_dataset"][target]["regret@1"] == pytest.approx(expected["regret@1"])
        assert mine["per_dataset"][target]["fine_tunings_to_near_best"] == pytest.approx(
            expected["fine_tunings_to_near_best"])
    with pytest.raises(ValueError, match="unknown evaluation method"):
        acq.evaluate_knowledge(small_kb, small_kb.edges, targets, "catboost")


def test_acquire_cli(small_kb, tmp_path):
    target = small_kb.datasets[0]
    edges = small_kb.edges
    sparse = type(small_kb)(**{**small_kb.__dict__, "edges": edges.drop(
        index=edges[edges["dataset"] == target].index[2:])})
    kb_dir = write_kb(sparse, tmp_path / "kb")
    out = tmp_path / "acquire.json"
    result = CliRunner().invoke(app, ["acquire", "--kb", str(kb_dir), "--n", "2",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    pairs = json.loads(out.read_text())["pairs"]
    known = set(zip(sparse.edges["model"], sparse.edges["dataset"], strict=True))
    assert len(pairs) == 2 and all(p["dataset"] == target for p in pairs)
    assert not {(p["model"], p["dataset"]) for p in pairs} & known
    assert pairs[0]["expected_gain"] >= pairs[1]["expected_gain"]
    assert pairs[0]["model"] in result.output
    full_dir = write_kb(small_kb, tmp_path / "full")
    done = CliRunner().invoke(app, ["acquire", "--kb", str(full_dir)])
    assert done.exit_code == 0 and "nothing to acquire" in done.output
    bad = CliRunner().invoke(app, ["acquire", "--kb", str(tmp_path / "absent")])
    assert bad.exit_code == 2
