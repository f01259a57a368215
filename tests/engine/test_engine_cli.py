"""`mnc evaluate` and `mnc rank` end to end on a small KB folder."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mnc_core.cli import app
from mnc_core.engine.decisions import DECISION_METRIC_NAMES, SPREAD_KEYS
from mnc_core.engine.metrics import METRIC_NAMES
from mnc_core.kb.store import write_kb

METHODS = {"mnc", "mnc-features-only", "mnc-graph-only", "overall", "initial", "direct", "random"}


@pytest.fixture
def kb_dir(small_kb, tmp_path):
    return write_kb(small_kb, tmp_path / "kb")


def test_evaluate_loo_writes_json(kb_dir, small_kb, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--kb", str(kb_dir), "--protocol", "loo", "--walks", "2",
         "--iterations", "20", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "mnc-graph-only" in result.output  # the printed table
    document = json.loads(out.read_text())
    assert document["protocol"] == "loo" and document["wall_s"] > 0
    assert (document["walks"], document["iterations"]) == (2, 20)  # what produced it
    assert set(document["methods"]) == METHODS
    for summary in document["methods"].values():
        assert set(summary["mean"]) == {*METRIC_NAMES, *DECISION_METRIC_NAMES, *SPREAD_KEYS}
        assert set(summary["per_dataset"]) == set(small_kb.datasets)
        for row in summary["per_dataset"].values():
            assert set(row) == {*METRIC_NAMES, *DECISION_METRIC_NAMES}
            assert row["regret@1"] >= row["regret@3"] >= row["regret@5"] >= 0
            assert 1 <= row["fine_tunings_to_near_best"] <= len(small_kb.models)
            assert row["osr"] in (0.0, 1.0) or 0 < row["osr"] < 1  # random averages seeds
            assert row["o2o"] >= 0
            assert -1 <= row["wtau"] <= 1 and -1 <= row["pearson"] <= 1


def test_rank_prints_and_writes_ranking(kb_dir, small_kb, tmp_path):
    out = tmp_path / "rank.json"
    target = small_kb.datasets[0]
    result = CliRunner().invoke(
        app, ["rank", "--kb", str(kb_dir), "--dataset", target, "--seed", "5", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["seed"] == 5
    ranking = document["ranking"]
    assert [r["rank"] for r in ranking] == list(range(1, len(small_kb.models) + 1))
    assert {r["model"] for r in ranking} == set(small_kb.models)
    known = small_kb.edges[small_kb.edges["dataset"] == target].set_index("model")["score"]
    assert all(r["known_score"] == pytest.approx(known[r["model"]]) for r in ranking)
    assert ranking[0]["model"] in result.output


def test_errors_exit_2_with_one_line(kb_dir, tmp_path):
    runner = CliRunner()
    unknown = runner.invoke(app, ["rank", "--kb", str(kb_dir), "--dataset", "nope"])
    assert unknown.exit_code == 2
    assert "nope" in unknown.output and "Traceback" not in unknown.output
    missing = runner.invoke(
        app, ["evaluate", "--kb", str(tmp_path / "absent"), "--json", str(tmp_path / "x.json")]
    )
    assert missing.exit_code == 2
    assert "absent" in missing.output
    assert not (tmp_path / "x.json").exists()
    bad_ranker = runner.invoke(
        app, ["evaluate", "--kb", str(kb_dir), "--ranker", "svm", "--json", str(tmp_path / "y")]
    )
    assert bad_ranker.exit_code == 2 and "catboost-class" in bad_ranker.output


def test_unwritable_json_path_is_refused_before_any_work(kb_dir, tmp_path, monkeypatch):
    """A --json that names a folder or sits under a file fails at once, naming the path."""
    import mnc_core.engine.protocols as protocols

    def must_not_run(*args, **kwargs):
        raise AssertionError("the evaluation ran although its report could not be written")

    monkeypatch.setattr(protocols, "leave_one_out", must_not_run)
    runner = CliRunner()
    folder = tmp_path / "reports"
    folder.mkdir()
    into_folder = runner.invoke(app, ["evaluate", "--kb", str(kb_dir), "--json", str(folder)])
    assert into_folder.exit_code == 2, into_folder.output
    assert f"{folder}: is a folder" in into_folder.output
    a_file = tmp_path / "plain.txt"
    a_file.write_text("keep me\n")
    under_file = runner.invoke(
        app, ["evaluate", "--kb", str(kb_dir), "--json", str(a_file / "eval.json")]
    )
    assert under_file.exit_code == 2 and "is not a folder" in under_file.output
    assert a_file.read_text() == "keep me\n"
    rank_into_folder = runner.invoke(
        app, ["rank", "--kb", str(kb_dir), "--dataset", "x", "--json", str(folder)]
    )
    assert rank_into_folder.exit_code == 2 and "is a folder" in rank_into_folder.output


def test_json_inside_the_kb_folder_is_refused(kb_dir, small_kb, monkeypatch, snapshot):
    """--json must never overwrite one of the KB's own files."""
    import mnc_core.engine.protocols as protocols

    monkeypatch.setattr(protocols, "leave_one_out", lambda *a, **k: pytest.fail("ran"))
    before = snapshot(kb_dir)
    runner = CliRunner()
    for args in (["rank", "--dataset", small_kb.datasets[0]], ["evaluate"]):
        for name in ("edges.csv", "kb.json", "new-report.json"):
            result = runner.invoke(app, [*args, "--kb", str(kb_dir), "--json", str(kb_dir / name)])
            assert result.exit_code == 2, result.output
            assert "inside the knowledge base folder" in result.output
    assert snapshot(kb_dir) == before


def test_targets_without_any_id_and_out_of_range_seeds_are_usage_errors(kb_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "eval.json"
    empty = runner.invoke(app, ["evaluate", "--kb", str(kb_dir), "--targets", ",",
                                "--json", str(out)])
    assert empty.exit_code == 2 and "--targets: no dataset id" in empty.output
    assert not out.exists()
    for command in (["rank", "--kb", str(kb_dir), "--dataset", "x"],
                    ["evaluate", "--kb", str(kb_dir), "--json", str(out)],
                    ["demo-kb", "--out", str(tmp_path / "demo")]):
        for seed in ("-1", str(2**32), "99999999999999999999"):
            result = runner.invoke(app, [*command, "--seed", seed])
            assert result.exit_code == 2, (command, seed, result.output)
            assert "--seed" in result.output and "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "demo").exists()


def test_ranking_rows_and_table_mark_unknown_values():
    """A ranker without confidence (NaN) and a model without a known score print and dump as
    n/a / - and null, never as the string 'nan' (which json.dump would refuse)."""
    import numpy as np
    import pandas as pd

    from mnc_core.engine.report import ranking_rows, ranking_table

    table = pd.DataFrame(
        {"rank": [1, 2], "goodness": [0.5, -0.25], "confidence": [np.nan, np.nan],
         "known_score": [12.5, np.nan]},
        index=["model-a", "model-b"],
    )
    rows = ranking_rows(table)
    assert rows == [
        {"model": "model-a", "rank": 1, "goodness": 0.5, "confidence": None, "known_score": 12.5},
        {"model": "model-b", "rank": 2, "goodness": -0.25, "confidence": None, "known_score": None},
    ]
    json.dumps(rows, allow_nan=False)
    lines = ranking_table(table).splitlines()
    assert lines[1].split() == ["1", "model-a", "0.500", "n/a", "12.5"]
    assert lines[2].split() == ["2", "model-b", "-0.250", "n/a", "-"]


def test_help_lists_each_command_description_unbroken():
    """`mnc --help` (and its groups) list each command's first docstring paragraph as
    one sentence, not cut where the docstring's source lines end."""
    import inspect

    import typer

    runner = CliRunner()
    root = typer.main.get_command(app)
    groups = [([], root)] + [([name], group) for name, group in root.commands.items()
                             if hasattr(group, "commands")]
    assert [path for path, _ in groups] == [[], ["import"], ["zoo"]]
    for path, group in groups:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
        assert result.exit_code == 0, result.output
        lines = [" ".join(line.strip(" │").split()) for line in result.output.splitlines()]
        for command in group.commands.values():
            if command.callback is None or not command.callback.__doc__:
                continue  # a group: its help is one line already
            first = " ".join(inspect.cleandoc(command.callback.__doc__).split("\n\n")[0].split())
            assert f"{command.name} {first}" in lines, (path, command.name)
