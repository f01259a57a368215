"""Engine-side guards from the hostile-input review: OSR's tie tolerance follows the score
scale, metrics are never infinite (a JSON report would fail after the whole run), and
flags that do not apply to the chosen protocol are an error, not silently ignored."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from mnc_core.cli import app
from mnc_core.engine.metrics import dataset_metrics
from mnc_core.kb.store import write_kb


@pytest.mark.parametrize("scale", [1e-13, 1.0, 1e9])
def test_osr_tie_tolerance_is_relative_to_the_score_scale(scale: float) -> None:
    predicted = pd.Series({"a": 1.0, "b": 0.0, "c": -1.0})  # picks a
    worse = pd.Series({"a": 0.5 * scale, "b": 1.0 * scale, "c": 0.0})
    assert dataset_metrics(predicted, worse, True, None)["osr"] == 0.0
    float_noise = pd.Series({"a": scale * (1 - 1e-12), "b": scale, "c": 0.0})
    assert dataset_metrics(predicted, float_noise, True, None)["osr"] == 1.0


def test_metrics_are_finite_or_null_for_huge_scores() -> None:
    predicted = pd.Series({"a": 1.0, "b": 0.0})
    truth = pd.Series({"a": -1.7e308, "b": 1.7e308})
    row = dataset_metrics(predicted, truth, True, "b")
    json.dumps(row, allow_nan=False)  # what report.write_json needs
    assert row["o2o"] is None and row["o2b"] is None and row["osr"] == 0.0
    assert all(v is None or math.isfinite(v) for v in row.values())


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--levels", "0.5"], "--levels"), (["--sparsity-seeds", "2"], "--sparsity-seeds"),
     (["--levels", "0.5", "--sparsity-seeds", "2"], "--levels and --sparsity-seeds")],
)
def test_sparsity_flags_with_loo_are_an_error(small_kb, tmp_path, flags, named) -> None:
    kb_dir = write_kb(small_kb, tmp_path / "kb")
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app, ["evaluate", "--kb", str(kb_dir), "--protocol", "loo", *flags, "--json", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert f"{named} only apply to --protocol sparsity" in result.output
    assert not out.exists()
