"""Data-quality expectations on the merged FID-edge table (warehouse table `fid_edges`).

A bad edge (NaN, inf, a negative distance, an implausible score, a duplicate pair, an
unknown id) must never reach the matching graph or the ranker, so the asset check that
guards `fid_edges` calls `validate_fid_edges` and blocks on its blocking expectations.
Advisory expectations (per-dataset outliers, matrix coverage) only warn: such edges are
suspicious or sparse, not wrong.

Great Expectations 1.x is called directly (the dagster-ge integration supports GX < 1
only). It is imported inside `validate_fid_edges`, never at module import: it costs
7-9 s, and every Dagster run worker and code-location reload loads this module. This
module imports neither GX nor Dagster at import time.

How GX is run, and why:
- `gx.get_context(mode="ephemeral")`: without a mode GX may pick up a gx/ folder or
  cloud settings; ephemeral writes nothing to disk and contacts nothing.
- No usage statistics: GX 1.24 ships no analytics client (`analytics_enabled` is a
  config field nothing reads), and we still opt out both ways earlier 1.x releases
  honoured (`GX_ANALYTICS_ENABLED=False` before import, `enable_analytics(False)`), so an
  upgrade within 1.x cannot start sending events.
- Progress bars off (`ProgressBarsConfig(globally=False)`): they would flood run logs.
- The context, pandas datasource and whole-dataframe batch definition are built once per
  process and reused (a lock serialises use: a GX context is not thread-safe).

GX has no grouped expectation, so the per-dataset outlier score (robust z on
median/MAD) and the "counts toward coverage" flag are computed with pandas into helper
columns that GX expectations then check. Failing rows are always taken from GX's own
result (`result_format="COMPLETE"` gives the unexpected index list), never re-derived.

An EMPTY edge table fails the blocking `table_not_empty` expectation: the graph would
have no model-dataset edges and the ranker nothing to learn from, so whatever runs
downstream would produce recommendations from nothing. (Every other row-wise
expectation passes vacuously on it.)
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("model", "dataset", "score", "provenance")
FAILING_ROW_COLUMNS = ("model", "dataset", "value", "provenance")
# Iglewicz & Hoaglin's cut-off for the modified (median/MAD) z-score.
DEFAULT_OUTLIER_Z = 3.5
DEFAULT_MIN_COVERAGE = 0.5
MAX_SUMMARY_ROWS = 20

_ROBUST_Z = "score_robust_z"
_COVERS_CELL = "counts_toward_coverage"
# Scale factors making MAD and mean absolute deviation consistent with a normal sigma.
_MAD_TO_SIGMA = 1.4826
_MEAN_AD_TO_SIGMA = 1.253314


@dataclass(frozen=True, eq=False)
class ExpectationOutcome:
    """One expectation's verdict; `failing_rows` has FAILING_ROW_COLUMNS (value = score).

    Aggregate expectations (row count, coverage) fail no particular row: their
    `failing_rows` is empty and `observed` holds GX's observed value. `error` is GX's
    exception message when the expectation itself raised (it then counts as failed).
    """

    name: str
    blocking: bool
    success: bool
    rule: str
    failing_rows: pd.DataFrame
    observed: Any = None
    error: str | None = None


@dataclass(frozen=True, eq=False)
class EdgeValidation:
    """Every expectation's outcome plus GX's own result (strict-JSON-safe dict)."""

    metric: str
    outcomes: tuple[ExpectationOutcome, ...]
    gx_result: dict[str, Any]

    @property
    def blocking_passed(self) -> bool:
        """True when every blocking expectation holds: the edges may reach the graph."""
        return all(o.success for o in self.outcomes if o.blocking)

    @property
    def advisory_passed(self) -> bool:
        """True when no advisory expectation warns."""
        return all(o.success for o in self.outcomes if not o.blocking)

    def outcome(self, name: str) -> ExpectationOutcome:
        """The outcome of the expectation called `name` (KeyError naming the known ones)."""
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(f"no expectation {name!r}; known: {[o.name for o in self.outcomes]}")

    def failing_rows(self, blocking: bool | None = None) -> pd.DataFrame:
        """All failing rows with their expectation's name and blocking flag (one row per
        expectation and edge); `blocking` True/False keeps only that kind."""
        parts = [
            o.failing_rows.assign(expectation=o.name, blocking=o.blocking)
            for o in self.outcomes
            if blocking is None or o.blocking == blocking
        ]
        columns = ["expectation", "blocking", *FAILING_ROW_COLUMNS]
        parts = [p for p in parts if len(p)]
        if not parts:
            return pd.DataFrame(columns=columns)
        return pd.concat(parts, ignore_index=True)[columns]

    def to_json_dict(self) -> dict[str, Any]:
        """Our verdict as strict JSON (non-finite floats as strings) for check metadata."""
        expectations = [
            {
                "name": o.name,
                "blocking": o.blocking,
                "success": o.success,
                "rule": o.rule,
                "observed": o.observed,
                "error": o.error,
                "failing_rows": o.failing_rows.to_dict(orient="records"),
            }
            for o in self.outcomes
        ]
        verdict = {
            "metric": self.metric,
            "blocking_passed": self.blocking_passed,
            "advisory_passed": self.advisory_passed,
            "expectations": expectations,
        }
        return _json_safe(verdict)

    def summary_markdown(self, max_rows: int = MAX_SUMMARY_ROWS) -> str:
        """A markdown verdict for Dagster metadata: one line per expectation, then the
        first `max_rows` failing rows (blocking ones first)."""
        return "\n".join(
            [_headline(self), "", *_outcome_table(self.outcomes), "",
             *_failing_rows_table(self.failing_rows(), max_rows)]
        ).rstrip() + "\n"


def validate_fid_edges(
    edges: pd.DataFrame,
    *,
    models: Sequence[str],
    datasets: Sequence[str],
    metric: str,
    higher_is_better: bool,
    plausible_range: tuple[float, float],
    outlier_z: float = DEFAULT_OUTLIER_Z,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> EdgeValidation:
    """Run the FID-edge expectation suite on `edges` (columns model, dataset, score,
    provenance; others are ignored) with Great Expectations.

    `models`/`datasets` are the known ids (every edge must use them; they also span the
    coverage matrix). `metric` and `higher_is_better` describe `score`: a lower-is-better
    metric is a distance (CLIP-FID, KID, CMMD), so it must also be non-negative.
    `plausible_range` (inclusive; an infinite bound is open) is what a real score of
    this metric can be. `outlier_z`: robust z (median/MAD of the dataset's scores) above
    which a score warns. `min_coverage`: share of the models x datasets matrix that
    should have an edge before the ranker's estimate is worth much (warns below).
    Raises ValueError for a missing column or inconsistent settings: those are bugs of
    the caller, not bad data.
    """
    _check_arguments(edges, plausible_range, outlier_z, min_coverage)
    known_models, known_datasets = list(dict.fromkeys(models)), list(dict.fromkeys(datasets))
    frame = _prepared(edges, known_models, known_datasets)
    specs = _specs(
        metric, higher_is_better, plausible_range, outlier_z,
        _cells_needed(min_coverage, known_models, known_datasets), known_models, known_datasets,
    )
    result = _run_suite(frame, specs)
    by_name = {r.expectation_config.meta["mnc_name"]: r for r in result.results}
    outcomes = tuple(_outcome(spec, by_name[spec.name], frame) for spec in specs)
    return EdgeValidation(metric, outcomes, _json_safe(result.to_json_dict()))


# --- inputs ---------------------------------------------------------------------------


def _check_arguments(
    edges: pd.DataFrame, plausible_range: tuple[float, float], outlier_z: float,
    min_coverage: float,
) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in edges.columns]
    if missing:
        raise ValueError(f"FID edges lack column(s) {missing}; expected {list(REQUIRED_COLUMNS)}")
    low, high = plausible_range
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"plausible_range {plausible_range} is not an interval (low <= high)")
    if not outlier_z > 0:
        raise ValueError(f"outlier_z must be positive, got {outlier_z}")
    if not 0 <= min_coverage <= 1:
        raise ValueError(f"min_coverage is a share of the matrix (0..1), got {min_coverage}")


def _prepared(edges: pd.DataFrame, models: list[str], datasets: list[str]) -> pd.DataFrame:
    """The edges with a fresh 0..n-1 index (GX's unexpected indices are then positions),
    float scores, and the helper columns the grouped/aggregate expectations check."""
    frame = edges[list(REQUIRED_COLUMNS)].reset_index(drop=True)
    frame["score"] = frame["score"].astype("float64")
    frame[_ROBUST_Z] = _robust_abs_z(frame)
    frame[_COVERS_CELL] = _covers_cell(frame, models, datasets).astype("int64")
    return frame


def _robust_abs_z(frame: pd.DataFrame) -> pd.Series:
    """|score - dataset median| / (1.4826 MAD) over the dataset's finite scores.

    When over half the scores tie (MAD 0) the mean absolute deviation stands in (Iglewicz
    & Hoaglin); all-equal scores give 0. Null or infinite scores get NaN: they are the
    blocking expectations' business and GX's column maps skip nulls.
    """
    finite = frame["score"].where(np.isfinite(frame["score"]))
    by_dataset = frame["dataset"]
    deviation = (finite - finite.groupby(by_dataset).transform("median")).abs()
    mad = deviation.groupby(by_dataset).transform("median")
    mean_ad = deviation.groupby(by_dataset).transform("mean")
    scale = (_MAD_TO_SIGMA * mad).where(mad > 0, _MEAN_AD_TO_SIGMA * mean_ad)
    z = (deviation / scale.where(scale > 0)).where(scale > 0, 0.0)
    return z.where(finite.notna())


def _covers_cell(frame: pd.DataFrame, models: list[str], datasets: list[str]) -> pd.Series:
    """True on the first edge of each (known model, known dataset) cell."""
    first = ~frame.duplicated(["model", "dataset"])
    return first & frame["model"].isin(models) & frame["dataset"].isin(datasets)


def _cells_needed(min_coverage: float, models: list[str], datasets: list[str]) -> int:
    cells = len(models) * len(datasets)
    return math.ceil(min_coverage * cells - 1e-9)


# --- the suite ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """One expectation: our name, blocking flag, readable rule, GX class and kwargs."""

    name: str
    blocking: bool
    rule: str
    gx_class: str
    kwargs: dict[str, Any]


def _specs(
    metric: str, higher_is_better: bool, plausible_range: tuple[float, float],
    outlier_z: float, cells_needed: int, models: list[str], datasets: list[str],
) -> list[_Spec]:
    low, high = plausible_range
    inf = float("inf")
    specs = [
        _Spec("table_not_empty", True, "at least one edge (a ranker cannot learn from none)",
              "ExpectTableRowCountToBeBetween", {"min_value": 1}),
        _Spec("score_not_null", True, f"{metric} is not null",
              "ExpectColumnValuesToNotBeNull", {"column": "score"}),
        _Spec("score_finite", True, f"{metric} is finite (not inf)",
              "ExpectColumnValuesToNotBeInSet", {"column": "score", "value_set": [inf, -inf]}),
    ]
    if not higher_is_better:
        specs.append(_Spec("score_non_negative", True, f"{metric} is a distance: >= 0",
                           "ExpectColumnValuesToBeBetween", {"column": "score", "min_value": 0}))
    specs += [
        _Spec("score_in_plausible_range", True, f"{metric} within [{low:g}, {high:g}]",
              "ExpectColumnValuesToBeBetween", {"column": "score", **_bounds(low, high)}),
        _Spec("one_edge_per_pair", True, "one edge per (model, dataset)",
              "ExpectCompoundColumnsToBeUnique", {"column_list": ["model", "dataset"]}),
        _Spec("model_known", True, f"model is one of the {len(models)} known models",
              "ExpectColumnValuesToBeInSet", {"column": "model", "value_set": models}),
        _Spec("dataset_known", True, f"dataset is one of the {len(datasets)} known datasets",
              "ExpectColumnValuesToBeInSet", {"column": "dataset", "value_set": datasets}),
        _Spec("score_not_outlier_in_dataset", False,
              f"robust z of {metric} within its dataset <= {outlier_z:g}",
              "ExpectColumnValuesToBeBetween", {"column": _ROBUST_Z, "max_value": outlier_z}),
        _Spec("matrix_coverage", False,
              f"at least {cells_needed} of {len(models)} x {len(datasets)} cells have an edge",
              "ExpectColumnSumToBeBetween", {"column": _COVERS_CELL, "min_value": cells_needed}),
    ]
    return specs


def _bounds(low: float, high: float) -> dict[str, float]:
    """GX's between-kwargs for [low, high]; an infinite bound is left open."""
    bounds = {"min_value": low, "max_value": high}
    return {k: v for k, v in bounds.items() if math.isfinite(v)} or {"min_value": -math.inf}


# --- running GX -----------------------------------------------------------------------

_GX_LOCK = threading.Lock()
_GX_STATE: dict[str, Any] = {}


def _run_suite(frame: pd.DataFrame, specs: list[_Spec]) -> Any:
    """GX's ExpectationSuiteValidationResult of `specs` on `frame`."""
    with _GX_LOCK:
        gx, batch_definition = _gx_and_batch_definition()
        suite = gx.ExpectationSuite(name="fid_edges")
        for spec in specs:
            suite.add_expectation(_expectation(gx, spec))
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(suite, result_format="COMPLETE")


def _gx_and_batch_definition() -> tuple[Any, Any]:
    """The GX module and the process's one whole-dataframe batch definition (built on
    first use in an ephemeral context: no gx/ folder, no cloud, no analytics, no bars)."""
    if not _GX_STATE:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.enable_analytics(False)
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas(name="mnc").add_dataframe_asset(name="fid_edges")
        _GX_STATE["gx"] = gx
        _GX_STATE["batch_definition"] = asset.add_batch_definition_whole_dataframe("whole")
    return _GX_STATE["gx"], _GX_STATE["batch_definition"]


def _expectation(gx: Any, spec: _Spec) -> Any:
    severity = "critical" if spec.blocking else "warning"
    gx_class = getattr(gx.expectations, spec.gx_class)
    return gx_class(**spec.kwargs, severity=severity, description=spec.rule,
                    meta={"mnc_name": spec.name, "blocking": spec.blocking})


def _outcome(spec: _Spec, gx_result: Any, frame: pd.DataFrame) -> ExpectationOutcome:
    """Our outcome of one GX expectation result: the failing rows are the rows at GX's
    unexpected indices (positions, as `frame` has a 0..n-1 index)."""
    details = gx_result.result or {}
    indices = details.get("unexpected_index_list") or []
    failing = frame.iloc[list(indices)]
    rows = pd.DataFrame({
        "model": failing["model"].to_numpy(),
        "dataset": failing["dataset"].to_numpy(),
        "value": failing["score"].to_numpy(),
        "provenance": failing["provenance"].to_numpy(),
    }, columns=list(FAILING_ROW_COLUMNS))
    error = _gx_error(gx_result.exception_info)
    return ExpectationOutcome(
        spec.name, spec.blocking, bool(gx_result.success) and error is None, spec.rule, rows,
        _json_safe(details.get("observed_value")), error,
    )


def _gx_error(exception_info: Any) -> str | None:
    """GX's exception message when the expectation raised (flat or per-metric dict)."""
    infos = exception_info or {}
    if "raised_exception" in infos:
        infos = {"": infos}
    for info in infos.values():
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "raised an exception")
    return None


def _json_safe(value: Any) -> Any:
    """`value` with non-finite floats as strings ('NaN', 'Infinity', '-Infinity') and
    numpy scalars as Python ones, so it passes strict JSON (json.dumps(allow_nan=False))."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


# --- markdown -------------------------------------------------------------------------


def _headline(validation: EdgeValidation) -> str:
    blocking = "passed" if validation.blocking_passed else "FAILED"
    advisory = "passed" if validation.advisory_passed else "WARN"
    return f"**FID edges ({validation.metric})**: blocking {blocking}, advisory {advisory}"


def _outcome_table(outcomes: Sequence[ExpectationOutcome]) -> list[str]:
    lines = ["| expectation | blocking | passed | failing rows | rule | observed |",
             "|---|---|---|---|---|---|"]
    for o in outcomes:
        passed = "yes" if o.success else ("ERROR: " + o.error if o.error else "**no**")
        observed = "" if o.observed is None or isinstance(o.observed, dict) else o.observed
        cells = [o.name, "yes" if o.blocking else "no", passed, len(o.failing_rows), o.rule,
                 observed]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _failing_rows_table(rows: pd.DataFrame, max_rows: int) -> list[str]:
    if rows.empty:
        return []
    shown = rows.sort_values("blocking", ascending=False, kind="stable").head(max_rows)
    title = f"Failing rows ({len(shown)} of {len(rows)} shown):"
    lines = [title, "", "| expectation | model | dataset | value | provenance |",
             "|---|---|---|---|---|"]
    for row in shown.itertuples(index=False):
        cells = [row.expectation, row.model, row.dataset, row.value, row.provenance]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, floats short."""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")
