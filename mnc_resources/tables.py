"""The warehouse's tables: one definition of every table's name, columns and partition keys.

Python assets write these tables through `Warehouse`; the SQL models in `dbt_like_sql/`
read them by name (and `TABLE_PRODUCERS` in `mnc_assets` maps each name to the asset
that writes it, so a SQL model's dependencies follow from its table references).
Per-partition tables carry their partition's ids as columns (`partition_columns`);
history tables (`evaluations`) are append-only and keep each run's id and time.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Table:
    """A warehouse table: `columns` are (name, DuckDB type) in schema order."""

    name: str
    columns: tuple[tuple[str, str], ...]
    partition_columns: tuple[str, ...] = ()
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def select_list(self) -> str:
        return ", ".join(self.column_names)

    @property
    def create_sql(self) -> str:
        body = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({body})"

    def conform(self, rows: pd.DataFrame) -> pd.DataFrame:
        """`rows` with exactly this table's columns, in order (a missing column is an error)."""
        missing = [c for c in self.column_names if c not in rows.columns]
        if missing:
            raise ValueError(f"table {self.name}: rows lack column(s) {missing}")
        return rows[self.column_names].reset_index(drop=True)


def _table(name: str, columns: str, partition: tuple[str, ...] = (), description: str = ""):
    pairs = tuple(tuple(part.split()) for part in columns.split(","))
    return Table(name, pairs, partition, description)  # type: ignore[arg-type]


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        _table(
            "model_features",
            "model VARCHAR, pipeline_class VARCHAR, params DOUBLE, tflops_per_image DOUBLE,"
            "hyperparameters VARCHAR, computed_at TIMESTAMP",
            ("model",),
            "one row per model: its flattened configs (JSON) and measured size/compute; "
            "the zoo-wide encoding (paper 4.2) is applied when the knowledge is assembled",
        ),
        _table(
            "dataset_files",
            "dataset VARCHAR, file_name VARCHAR, caption VARCHAR, split VARCHAR, "
            "sha256 VARCHAR",
            ("dataset",),
            "the validated manifest: every accepted image-caption pair and its split",
        ),
        _table(
            "dataset_skipped_files",
            "dataset VARCHAR, file_name VARCHAR, reason VARCHAR",
            ("dataset",),
            "files a dataset's validation skipped, with the reason (never touched)",
        ),
        _table(
            "dataset_features",
            "dataset VARCHAR, clip VARCHAR, n_images BIGINT, mean_embedding DOUBLE[], "
            "computed_at TIMESTAMP",
            ("dataset",),
            "mean CLIP image embedding per dataset (the dataset feature)",
        ),
        _table(
            "dataset_distances",
            "dataset VARCHAR, other VARCHAR, distance DOUBLE, computed_at TIMESTAMP",
            ("dataset",),
            "dataset-dataset CLIP-FID, computed by `dataset` against each earlier one",
        ),
        _table(
            "computed_fid_edges",
            "model VARCHAR, dataset VARCHAR, clip_fid DOUBLE, clip_fid_before DOUBLE, "
            "kid DOUBLE, cmmd DOUBLE, n_samples BIGINT, gpu_hours DOUBLE, "
            "computed_at TIMESTAMP",
            ("model", "dataset"),
            "model-dataset edges measured here: CLIP-FID of the LoRA samples (and of the "
            "base model's, before fine-tuning)",
        ),
        _table(
            "imported_edges",
            "model VARCHAR, dataset VARCHAR, score DOUBLE, score_before DOUBLE, cost DOUBLE, "
            "source VARCHAR, metric VARCHAR, higher_is_better BOOLEAN",
            (),
            "model-dataset edges of the imported knowledge-base folders (source = folder)",
        ),
        _table(
            "fid_edges",
            "model VARCHAR, dataset VARCHAR, score DOUBLE, score_before DOUBLE, cost DOUBLE, "
            "provenance VARCHAR",
            (),
            "every known model-dataset edge, computed and imported, one per pair",
        ),
        _table(
            "knowledge_metric",
            "metric VARCHAR, higher_is_better BOOLEAN",
            (),
            "the metric of fid_edges.score and its direction (one row)",
        ),
        _table(
            "recommendations",
            "dataset VARCHAR, model VARCHAR, rank BIGINT, goodness DOUBLE, confidence DOUBLE, "
            "known_score DOUBLE, ranker VARCHAR, seed BIGINT, run_id VARCHAR, "
            "computed_at TIMESTAMP, near_best_probability DOUBLE, in_shortlist BOOLEAN, "
            "cost_gpu_hours DOUBLE, next_order BIGINT, stop BOOLEAN",
            ("dataset",),
            "every model's predicted rank for a dataset (best first); its calibrated "
            "near-best probability and shortlist membership (null before a calibration "
            "exists), GPU hours of one fine-tuning (null without costs), the order in which "
            "to fine-tune the untried models (1 = next; null once tried) and whether to stop "
            "(the tried models' near-best probability reached the stop probability)",
        ),
        _table(
            "feature_importances",
            "feature VARCHAR, input_group VARCHAR, importance DOUBLE",
            (),
            "the full ranker's feature importances (paper Table 1)",
        ),
        _table(
            "evaluations",
            "run_id VARCHAR, evaluated_at TIMESTAMP, protocol VARCHAR, level VARCHAR, "
            "method VARCHAR, metric VARCHAR, value DOUBLE, n_datasets BIGINT",
            (),
            "evaluation history, long format: one row per run, protocol, level, method and "
            "metric (appended; a new metric needs no schema change)",
        ),
    )
}
