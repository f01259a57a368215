"""Sequential selection: the collaborative scenario update by hand, the simulated
order, the protocol on a small KB, and
`mnc next` / `mnc evaluate --protocol sequential` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mnc_core.cli import app
from mnc_core.engine import sequential as seq
from mnc_core.engine.protocols import SEQUENTIAL_METHODS, sequential
from mnc_core.kb.store import write_kb

TRAIN = pd.DataFrame(
    {"a": [3.0, 1.0], "b": [2.0, 2.0], "c": [1.0, 3.0]}, index=["d1", "d2"]
)  # accuracy: d1 ranks a > b > c, d2 the reverse


def test_scenarios_by_hand():
    scenarios = seq.build_scenarios(TRAIN, True)
    assert scenarios.goodness.loc["d1"].tolist() == [1.0, 0.5, 0.0]
    assert scenarios.prior.tolist() == [0.5, 0.5]
    # one revealed pair "c beats a": d2 orders it right, d1 wrong; one model counts once
    # (2 / (r - 1) = 2): weights 0.9^2 : 0.1^2
    weights = seq.scenario_weights(scenarios, {"a": 0.1, "c": 0.9}, True)
    assert weights["d2"] == pytest.approx(0.81 / 0.82)


def test_collaborative_order_follows_the_agreeing_scenario():
    train = pd.DataFrame({"a": [4.0, 1.0], "b": [3.0, 2.0], "c": [2.0, 3.0], "d": [1.0, 4.0]},
                         index=["d1", "d2"])
    scenarios = seq.build_scenarios(train, True)
    truth = pd.Series({"a": 0.1, "b": 0.5, "c": 0.7, "d": 0.9})  # ranks as d2 does
    order = seq.sequential_order(
        lambda revealed: seq.next_scores(scenarios, revealed, True), list(train.columns), truth)
    # every mean goodness ties before two models are revealed (zoo order breaks ties);
    # "b beats a" then favours d2, whose best is d
    assert order == ["a", "b", "d", "c"]


def test_sequential_order_puts_models_it_does_not_know_last():
    truth = pd.Series({"a": 0.2, "z": 0.9, "b": 0.5})
    order = seq.sequential_order(
        lambda revealed: pd.Series({"a": 1.0, "b": 2.0}).drop(list(revealed), errors="ignore"),
        ["a", "b"], truth, limit=3)
    assert order == ["b", "a", "z"]


def test_sequential_protocol_on_a_small_kb(small_kb, fast_settings):
    result = sequential(small_kb, fast_settings, seed=0, targets=small_kb.datasets[:3], budget=3)
    assert set(result["methods"]) == set(SEQUENTIAL_METHODS) and result["budget"] == 3
    n = len(small_kb.models)
    for summary in result["methods"].values():
        mean = summary["mean"]
        regrets = [mean[f"regret_after_{b}"] for b in (1, 2, 3)]
        assert regrets == sorted(regrets, reverse=True) and min(regrets) >= 0
        assert 1 <= mean["fine_tunings_to_near_best"] <= n
        assert set(summary["per_dataset"]) == set(small_kb.datasets[:3])
    random = result["methods"]["random"]["mean"]
    assert random["fine_tunings_to_near_best"] == pytest.approx((n + 1) / 2)  # one near-best
    shares = result["prior_share"]  # M&C's share of each fold's prior, fitted on the others
    assert set(shares) == set(small_kb.datasets[:3])
    assert all(0.0 <= v <= 1.0 for v in shares.values())
    assert len(set(shares.values())) > 1  # each fold leaves its own dataset out of the fit


@pytest.fixture
def sparse_kb_dir(small_kb, tmp_path):
    """The small KB with only two known scores on its first dataset."""
    target = small_kb.datasets[0]
    edges = small_kb.edges
    drop = edges[(edges["dataset"] == target)].index[2:]
    kb = type(small_kb)(**{**small_kb.__dict__, "edges": edges.drop(index=drop)})
    return write_kb(kb, tmp_path / "kb"), target


def test_next_cli(sparse_kb_dir, tmp_path):
    kb_dir, target = sparse_kb_dir
    out = tmp_path / "next.json"
    result = CliRunner().invoke(
        app, ["next", "--kb", str(kb_dir), "--dataset", target, "--budget", "4",
              "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert len(document["tried"]) == 2 and document["next"] not in {
        t["model"] for t in document["tried"]}
    assert len(document["candidates"]) == 3
    for candidate in document["candidates"]:  # two scores known: the level is learnt
        assert candidate["expected_score"] > 0 and candidate["expected_score_sd"] > 0
        # printed at the precision of its sd: two significant digits, as many decimals
        sd = candidate["expected_score_sd"]
        decimals = max(0, 1 - math.floor(math.log10(sd)))
        assert (f"{candidate['expected_score']:.{decimals}f} +- {sd:.{decimals}f}"
                in result.output)
    assert 0 <= document["tried_near_best_probability"] <= 1
    assert f"next: {document['next']}" in result.output
    assert document["prior_share"] == 0.5 and "share of the prior: 0.50 (the default" in \
        result.output
    # the rest of the prior: the small KB has dataset features, so their regression
    assert document["prior_baseline"] == "feature regression"
    assert "the rest: feature regression" in result.output
    bad = CliRunner().invoke(app, ["next", "--kb", str(kb_dir), "--dataset", "nope"])
    assert bad.exit_code == 2


def test_next_cli_when_every_model_is_tried(small_kb, tmp_path):
    """A dataset with every model scored: stop, name the best, no empty candidate table."""
    kb_dir = write_kb(small_kb, tmp_path / "kb")
    target = small_kb.datasets[0]
    result = CliRunner().invoke(app, ["next", "--kb", str(kb_dir), "--dataset", target])
    assert result.exit_code == 0, result.output
    scores = small_kb.edges[small_kb.edges["dataset"] == target].set_index("model")["score"]
    best = scores.idxmax() if small_kb.higher_is_better else scores.idxmin()
    assert f"already fine-tuned, best {best}" in result.output
    assert "every model is tried" in result.output
    assert "P(near-best)" not in result.output and "next:" not in result.output


def test_evaluate_sequential_cli(small_kb, tmp_path):
    kb_dir = write_kb(small_kb, tmp_path / "kb")
    out = tmp_path / "seq.json"
    result = CliRunner().invoke(
        app, ["evaluate", "--kb", str(kb_dir), "--protocol", "sequential", "--budget", "5",
              "--walks", "2", "--iterations", "20", "--targets",
              ",".join(small_kb.datasets[:2]), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["protocol"] == "sequential" and document["budget"] == 5
    for name in SEQUENTIAL_METHODS:
        mean = document["methods"][name]["mean"]
        assert {f"regret_after_{b}" for b in range(1, 6)} <= set(mean)
        assert mean["fine_tunings_to_near_best"] is not None
    assert "after-3" in result.output
    shares = document["prior_share"]
    assert set(shares) == set(small_kb.datasets[:2])
    assert f"{min(shares.values()):.2f} - {max(shares.values()):.2f}" in result.output
    refused = CliRunner().invoke(
        app, ["evaluate", "--kb", str(kb_dir), "--budget", "3", "--json", str(out)])
    assert refused.exit_code == 2 and "--budget" in refused.output


def test_random_exact_equals_mean_of_all_orders():
    truth = pd.Series({"a": 1.0, "b": 3.0, "c": 2.0})
    from itertools import permutations

    from mnc_core.engine.decisions import order_decisions, random_decision_metrics

    exact = random_decision_metrics(truth, True, 0.0, ks=(1, 2), regret_key="regret_after_{k}")
    rows = [order_decisions(list(p), truth, True, 0.0, ks=(1, 2), regret_key="regret_after_{k}")
            for p in permutations(truth.index)]
    assert exact["regret_after_1"] == pytest.approx(np.mean([r["regret_after_1"] for r in rows]))
    assert exact["regret_after_2"] == pytest.approx(np.mean([r["regret_after_2"] for r in rows]))


def test_next_pick_with_a_precomputed_ranking_equals_ranking_inside(
        sparse_kb_dir, fast_settings, monkeypatch):
    from mnc_core.engine import predict
    from mnc_core.kb.store import read_kb

    kb_dir, target = sparse_kb_dir
    kb = read_kb(kb_dir)
    table = predict.rank_new_dataset(kb, target, fast_settings, 0)
    inside = seq.next_pick(kb, target, fast_settings, 0)
    calls = []
    monkeypatch.setattr(predict, "rank_new_dataset", lambda *a, **k: calls.append(a))
    given = seq.next_pick(kb, target, fast_settings, 0, table=table)
    assert calls == []  # the given table is used, nothing is ranked again
    assert given == inside
    assert given["next"] is not None and len(given["tried"]) == 2


def test_next_cli_fits_the_prior_share_on_a_stored_calibration(sparse_kb_dir, tmp_path):
    """`mnc next --calibration FILE`: M&C's share of the prior comes from the stored
    leave-one-out points of the other datasets; a broken file is refused by name."""
    from mnc_core.engine.shortlist import calibrate, calibration_to_json

    kb_dir, target = sparse_kb_dir
    pairs = pd.DataFrame({"dataset": [target, target, "other", "other"],
                          "model": ["a", "b", "a", "b"], "raw": [1.0, 0.0, 1.0, 0.0],
                          "near": [1.0, 0.0, 0.0, 1.0], "share_num": [5.0, 5.0, 0.2, 0.1],
                          "share_den": [1.0, 1.0, 0.5, 0.5]})
    file = tmp_path / "calibration.json"
    file.write_text(json.dumps(calibration_to_json(calibrate(pairs))))
    out = tmp_path / "next.json"
    result = CliRunner().invoke(app, ["next", "--kb", str(kb_dir), "--dataset", target,
                                      "--calibration", str(file), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["prior_share"] == pytest.approx(0.3)  # "other" only
    assert f"0.30 (fitted on {file})" in result.output
    file.write_text("[1, 2]")
    bad = CliRunner().invoke(app, ["next", "--kb", str(kb_dir), "--dataset", target,
                                   "--calibration", str(file)])
    assert bad.exit_code == 2 and f"{file}: not a near-best calibration" in bad.output


def test_prior_shares_never_fit_a_fold_on_its_own_target(small_kb):
    """Each fold's share is fitted on the other folds' terms. With M&C's goodness equal
    to each target's true scores every share is 1; reversing one fold's goodness (so
    its own terms) lowers every other fold's share and leaves its own at 1."""
    from mnc_core.engine.metrics import oriented
    from mnc_core.engine.predict import Fold
    from mnc_core.engine.protocols import fold_prior_parts, prior_shares

    folds = [Fold(key=d, target=d, known_edges=small_kb.edges) for d in small_kb.datasets[:4]]
    scores = small_kb.score_matrix()
    truth = {f.key: oriented(scores.loc[f.target], small_kb.higher_is_better) for f in folds}

    def shares(goodness: dict[str, pd.Series]) -> dict[str, float]:
        parts = {f.key: fold_prior_parts(small_kb, f, goodness[f.key]) for f in folds}
        return prior_shares(small_kb, folds, parts)

    before = shares(truth)
    assert all(v == pytest.approx(1.0) for v in before.values())
    reversed_fold = folds[0].key
    after = shares({**truth, reversed_fold: -truth[reversed_fold]})
    assert after[reversed_fold] == pytest.approx(1.0)
    assert all(after[f.key] < 0.5 for f in folds[1:])
