"""The FID-edge expectations: a clean table passes; each planted bad edge fails exactly
the blocking expectation(s) it breaks, naming that edge; outliers and low coverage only
warn; GX runs ephemeral (no gx/ folder, no network, no progress bars) and is not
imported by importing the module."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnc_assets.fid_edge_expectations import EdgeValidation, validate_fid_edges

MODELS = ["m0", "m1", "m2", "m3"]
DATASETS = ["d0", "d1", "d2", "d3"]
REPO = Path(__file__).resolve().parents[2]


def clean_edges() -> pd.DataFrame:
    """Every (model, dataset) cell once; within a dataset the scores are evenly spread
    (robust z at most about 1), half computed, half imported."""
    rows = [
        (m, d, 20.0 + 3 * i + 2 * j, "computed" if (i + j) % 2 else "imported:kb-a")
        for i, m in enumerate(MODELS)
        for j, d in enumerate(DATASETS)
    ]
    return pd.DataFrame(rows, columns=["model", "dataset", "score", "provenance"])


def accuracy_edges() -> pd.DataFrame:
    edges = clean_edges()
    edges["score"] = edges["score"] / 100
    return edges


FID = {"metric": "clip_fid", "higher_is_better": False, "plausible_range": (0.0, 500.0)}
ACCURACY = {"metric": "eval_accuracy", "higher_is_better": True, "plausible_range": (0.0, 1.0)}


def validate(edges: pd.DataFrame, **overrides) -> EdgeValidation:
    settings = {"models": MODELS, "datasets": DATASETS, **FID, **overrides}
    return validate_fid_edges(edges, **settings)


def failing_blocking(validation: EdgeValidation) -> set[str]:
    return {o.name for o in validation.outcomes if o.blocking and not o.success}


def as_tuples(frame: pd.DataFrame) -> list[tuple]:
    assert list(frame.columns) == ["model", "dataset", "value", "provenance"]
    return sorted(frame.itertuples(index=False, name=None), key=repr)


def with_score(edges: pd.DataFrame, model: str, dataset: str, score: float) -> pd.DataFrame:
    edges = edges.copy()
    edges.loc[(edges["model"] == model) & (edges["dataset"] == dataset), "score"] = score
    return edges


def with_row(edges: pd.DataFrame, *row) -> pd.DataFrame:
    return pd.concat([edges, pd.DataFrame([row], columns=edges.columns)], ignore_index=True)


def test_clean_table_passes_every_expectation():
    validation = validate(clean_edges())
    assert validation.blocking_passed and validation.advisory_passed
    assert all(o.success and o.failing_rows.empty for o in validation.outcomes)
    names = {o.name for o in validation.outcomes}
    assert {"score_not_null", "score_finite", "score_non_negative", "score_in_plausible_range",
            "one_edge_per_pair", "model_known", "dataset_known", "table_not_empty"} <= names
    assert {o.name for o in validation.outcomes if not o.blocking} == {
        "score_not_outlier_in_dataset", "matrix_coverage"}


# (case, settings, planted table, blocking expectations that must fail, their failing rows)
PLANTED = [
    ("nan", FID, with_score(clean_edges(), "m2", "d1", np.nan),
     {"score_not_null"}, [("m2", "d1", np.nan, "computed")]),
    ("inf", FID, with_score(clean_edges(), "m1", "d3", np.inf),
     {"score_finite", "score_in_plausible_range"}, [("m1", "d3", np.inf, "imported:kb-a")]),
    ("negative_fid", FID, with_score(clean_edges(), "m3", "d0", -4.0),
     {"score_non_negative", "score_in_plausible_range"}, [("m3", "d0", -4.0, "computed")]),
    ("accuracy_above_one", ACCURACY, with_score(accuracy_edges(), "m0", "d2", 1.7),
     {"score_in_plausible_range"}, [("m0", "d2", 1.7, "imported:kb-a")]),
    ("unknown_model", FID, with_row(clean_edges(), "ghost", "d0", 25.0, "imported:kb-b"),
     {"model_known"}, [("ghost", "d0", 25.0, "imported:kb-b")]),
    ("unknown_dataset", FID, with_row(clean_edges(), "m0", "nowhere", 25.0, "computed"),
     {"dataset_known"}, [("m0", "nowhere", 25.0, "computed")]),
]


@pytest.mark.parametrize(("settings", "edges", "failing", "expected_rows"),
                         [case[1:] for case in PLANTED], ids=[case[0] for case in PLANTED])
def test_planted_bad_edge_fails_its_blocking_expectations_naming_the_edge(
    settings, edges, failing, expected_rows
):
    validation = validate(edges, **settings)
    assert not validation.blocking_passed
    assert failing_blocking(validation) == failing
    for name in failing:
        got = as_tuples(validation.outcome(name).failing_rows)
        assert len(got) == len(expected_rows) == 1
        (model, dataset, value, provenance), = got
        (e_model, e_dataset, e_value, e_provenance), = expected_rows
        assert (model, dataset, provenance) == (e_model, e_dataset, e_provenance)
        assert value == e_value or (np.isnan(value) and np.isnan(e_value))
    assert all(o.error is None for o in validation.outcomes)


def test_duplicate_pair_fails_uniqueness_naming_both_edges():
    edges = with_row(clean_edges(), "m1", "d2", 27.5, "imported:kb-b")
    validation = validate(edges)
    assert failing_blocking(validation) == {"one_edge_per_pair"}
    assert as_tuples(validation.outcome("one_edge_per_pair").failing_rows) == [
        ("m1", "d2", 27.0, "computed"), ("m1", "d2", 27.5, "imported:kb-b")]


def test_negative_accuracy_only_breaks_the_range_not_a_distance_rule():
    validation = validate(with_score(accuracy_edges(), "m0", "d0", -0.2), **ACCURACY)
    assert failing_blocking(validation) == {"score_in_plausible_range"}
    assert "score_non_negative" not in {o.name for o in validation.outcomes}


def test_an_outlier_only_warns_and_names_the_edge():
    validation = validate(with_score(clean_edges(), "m3", "d2", 400.0))
    assert validation.blocking_passed and not validation.advisory_passed
    outliers = validation.outcome("score_not_outlier_in_dataset")
    assert not outliers.success and not outliers.blocking
    assert as_tuples(outliers.failing_rows) == [("m3", "d2", 400.0, "computed")]


def test_the_outlier_threshold_is_the_one_given():
    strict = validate(clean_edges(), outlier_z=0.5)
    flagged = as_tuples(strict.outcome("score_not_outlier_in_dataset").failing_rows)
    # Each dataset's extreme scores (models m0 and m3, z about 1.0) exceed 0.5; m1, m2 not.
    assert {(m, d) for m, d, _, _ in flagged} == {(m, d) for m in ("m0", "m3") for d in DATASETS}


def test_low_coverage_only_warns_with_the_covered_cell_count():
    sparse = clean_edges().iloc[:5]
    validation = validate(sparse, min_coverage=0.5)
    coverage = validation.outcome("matrix_coverage")
    assert validation.blocking_passed and not validation.advisory_passed
    assert not coverage.success and not coverage.blocking and coverage.observed == 5
    assert validate(sparse, min_coverage=0.25).advisory_passed


def test_duplicates_and_unknown_ids_do_not_count_toward_coverage():
    edges = clean_edges().iloc[:8]
    edges = with_row(with_row(edges, "m0", "d0", 21.0, "imported:kb-b"), "ghost", "d0", 1.0, "x")
    assert validate(edges).outcome("matrix_coverage").observed == 8


def test_an_empty_table_fails_blocking_for_lack_of_edges():
    validation = validate(clean_edges().iloc[0:0])
    assert failing_blocking(validation) == {"table_not_empty"}
    assert validation.outcome("table_not_empty").observed == 0


def test_results_are_strict_json_and_gx_result_is_gx_own():
    validation = validate(with_score(clean_edges(), "m1", "d3", np.inf))
    gx_text = json.dumps(validation.gx_result, allow_nan=False)
    ours = json.loads(json.dumps(validation.to_json_dict(), allow_nan=False))
    assert "Infinity" in gx_text
    gx_names = {r["expectation_config"]["meta"]["mnc_name"]
                for r in validation.gx_result["results"]}
    assert gx_names == {o.name for o in validation.outcomes}
    finite = next(e for e in ours["expectations"] if e["name"] == "score_finite")
    assert finite["failing_rows"] == [
        {"model": "m1", "dataset": "d3", "value": "Infinity", "provenance": "imported:kb-a"}]
    assert ours["blocking_passed"] is False


def test_summary_lists_every_expectation_and_at_most_max_rows_failing_rows():
    edges = clean_edges()
    for k in range(30):
        edges = with_row(edges, f"ghost-{k:02d}", "d0", 25.0, "imported:a|b")
    validation = validate(edges)
    text = validation.summary_markdown(max_rows=20)
    total = len(validation.failing_rows())
    assert "blocking FAILED" in text
    for name in ("score_not_null", "model_known", "matrix_coverage"):
        assert f"| {name} |" in text
    assert "| model_known | yes | **no** | 30 |" in text
    assert total >= 30 and f"20 of {total} shown" in text
    shown = [line for line in text.splitlines() if line.startswith("| model_known | ghost-")]
    assert len(shown) == 20 and shown[0].endswith("| imported:a\\|b |")


def test_missing_column_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="provenance"):
        validate(clean_edges().drop(columns="provenance"))
    with pytest.raises(ValueError, match="plausible_range"):
        validate(clean_edges(), plausible_range=(5.0, 1.0))
    with pytest.raises(ValueError, match="min_coverage"):
        validate(clean_edges(), min_coverage=1.5)


FRESH_PROCESS = textwrap.dedent("""
    import json, socket, sys
    import pandas as pd
    import mnc_assets.fid_edge_expectations as fe
    imported = {name: name in sys.modules for name in ("great_expectations", "dagster")}
    attempts = []
    def refuse(self, address, *args):
        attempts.append(repr(address))
        raise OSError("network blocked by the test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    edges = pd.DataFrame({"model": ["m0", "m1", "m0"], "dataset": ["d0", "d0", "d1"],
                          "score": [1.0, 2.0, 3.0], "provenance": ["computed"] * 3})
    result = fe.validate_fid_edges(edges, models=["m0", "m1"], datasets=["d0", "d1"],
                                   metric="clip_fid", higher_is_better=False,
                                   plausible_range=(0.0, 500.0))
    print(json.dumps({"imported_before": imported, "attempts": attempts,
                      "passed": result.blocking_passed,
                      "gx_after": "great_expectations" in sys.modules}))
""")


def test_fresh_process_imports_no_gx_and_gx_writes_nothing_sends_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GX_ANALYTICS_ENABLED", None)
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["imported_before"] == {"great_expectations": False, "dagster": False}
    assert report["gx_after"] and report["passed"]
    assert report["attempts"] == []
    assert list(tmp_path.iterdir()) == []  # no gx/ folder, nothing at all
    assert "Calculating Metrics" not in done.stderr  # GX's progress bars stay off
