"""Concurrent writers: several processes (and a multiprocess Dagster run's parallel steps)
write the one DuckDB file without lock errors and without losing a row."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mnc_resources.instance import prepare_dagster_home
from mnc_resources.warehouse import Warehouse

REPO = Path(__file__).resolve().parents[2]
WRITERS, WRITES = 4, 12


def _rows(dataset: str, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": dataset, "model": [f"m{k}" for k in range(n)], "rank": range(1, n + 1),
        "goodness": [-float(k) for k in range(n)], "confidence": 0.5, "known_score": None,
        "ranker": "catboost-class", "seed": 0, "run_id": "r", "computed_at": pd.Timestamp.now(),
        "near_best_probability": 0.4, "in_shortlist": True, "cost_gpu_hours": None,
        "next_order": range(1, n + 1), "stop": False,
    })


def _writer(database: str, writer: int) -> None:
    warehouse = Warehouse(database=database)
    for j in range(WRITES):
        warehouse.replace_partition("recommendations", {"dataset": f"d{writer}-{j}"},
                                    _rows(f"d{writer}-{j}", 3 + writer))
        warehouse.read_table("recommendations")  # readers queue too


def test_processes_writing_partitions_at_once_lose_nothing(tmp_path):
    database = str(tmp_path / "w.duckdb")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(database, i)) for i in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * WRITERS
    table = Warehouse(database=database).read_table("recommendations")
    counts = table.groupby("dataset").size().to_dict()
    assert counts == {f"d{i}-{j}": 3 + i for i in range(WRITERS) for j in range(WRITES)}


def test_a_warehouse_of_an_older_schema_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    import duckdb

    database = tmp_path / "old.duckdb"
    with duckdb.connect(str(database)) as conn:  # recommendations as an older version made it
        conn.execute("CREATE TABLE recommendations (dataset VARCHAR, model VARCHAR, "
                     "rank BIGINT, goodness DOUBLE, confidence DOUBLE, known_score DOUBLE, "
                     "ranker VARCHAR, seed BIGINT, run_id VARCHAR, computed_at TIMESTAMP)")
        conn.execute("INSERT INTO recommendations VALUES ('old', 'm0', 1, 0.0, 0.5, NULL, "
                     "'catboost-class', 0, 'r0', now())")
    warehouse = Warehouse(database=str(database))
    kept = warehouse.read_table("recommendations")
    assert kept[["dataset", "model"]].values.tolist() == [["old", "m0"]]
    assert kept[["near_best_probability", "in_shortlist", "next_order"]].isna().all().all()
    warehouse.replace_partition("recommendations", {"dataset": "new"}, _rows("new", 2))
    assert sorted(warehouse.read_table("recommendations")["dataset"]) == ["new", "new", "old"]


def test_a_failed_write_keeps_the_partition_as_it_was(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    warehouse.replace_partition("recommendations", {"dataset": "a"}, _rows("a", 3))
    before = warehouse.read_table("recommendations")
    bad = _rows("a", 2).assign(rank=["one", "two"])  # not an integer: the INSERT fails
    with pytest.raises(Exception, match="(?i)conversion|convert|cast"):
        warehouse.replace_partition("recommendations", {"dataset": "a"}, bad)
    pd.testing.assert_frame_equal(warehouse.read_table("recommendations"), before)
    with pytest.raises(ValueError, match="dataset is not 'b'"):
        warehouse.replace_partition("recommendations", {"dataset": "b"}, _rows("a", 1))


@pytest.mark.timeout(60)  # a second lock on the held file would wait forever
def test_reads_inside_an_outer_connection_share_it_and_it_closes_after(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    other = Warehouse(database=str(tmp_path / "other.duckdb"))
    with warehouse.connect() as conn:
        # a temporary table lives only in the connection that made it
        conn.execute("CREATE TEMP TABLE scratch AS SELECT 42 AS answer")
        assert warehouse.read("SELECT answer FROM scratch")["answer"].tolist() == [42]
        warehouse.replace_partition("recommendations", {"dataset": "a"}, _rows("a", 2))
        with warehouse.connect() as inner:
            assert inner is conn
        (tmp_path / "sub").mkdir()
        with Warehouse(database=str(tmp_path / "sub" / ".." / "w.duckdb")).connect() as same:
            assert same is conn  # the same file, spelled another way
        # another warehouse file gets its own connection
        with pytest.raises(Exception, match="scratch"):
            other.read("SELECT answer FROM scratch")
    assert len(warehouse.read_table("recommendations")) == 2  # the nested write committed
    with pytest.raises(Exception, match="scratch"):  # the outer connection is closed
        warehouse.read("SELECT answer FROM scratch")
    # and unlocked: another process opens the file
    probe = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[2]);"
        "from mnc_resources.warehouse import Warehouse;"
        "print(len(Warehouse(database=sys.argv[1]).read_table('recommendations')))"),
        str(tmp_path / "w.duckdb"), str(REPO)], capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "2", probe.stderr


def _seed_tables(warehouse: Warehouse) -> None:
    """A few rows in every table the SQL models read."""
    warehouse.replace_table("knowledge_metric", pd.DataFrame(
        {"metric": ["clip_fid"], "higher_is_better": [False]}))
    warehouse.replace_table("fid_edges", pd.DataFrame({
        "model": ["a", "b", "a", "b"], "dataset": ["x", "x", "y", "y"],
        "score": [1.0, 2.0, 4.0, 3.0], "score_before": None, "cost": None,
        "provenance": "computed"}))
    for model in ("a", "b"):
        warehouse.replace_partition("model_features", {"model": model}, pd.DataFrame({
            "model": [model], "pipeline_class": ["P"], "params": [1.0],
            "tflops_per_image": [1.0], "hyperparameters": ["{}"],
            "computed_at": [pd.Timestamp.now()]}))
    for dataset in ("x", "y"):
        warehouse.replace_partition("dataset_features", {"dataset": dataset}, pd.DataFrame({
            "dataset": [dataset], "clip": ["tiny-vit"], "n_images": [8],
            "mean_embedding": [[0.0, 1.0]], "computed_at": [pd.Timestamp.now()]}))
    warehouse.append("evaluations", pd.DataFrame({
        "run_id": ["r1"], "evaluated_at": [pd.Timestamp.now()], "protocol": ["loo"],
        "level": ["all"], "method": ["mnc"], "metric": ["osr"], "value": [0.5],
        "n_datasets": [2]}))


def _step_windows(home: Path) -> dict[str, tuple[float, float]]:
    """Per step of the last run: from its worker process starting to its success."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs(limit=1)
        events = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.step_key]
    starts = {e.step_key: e.timestamp for e in events
              if e.dagster_event.event_type_value == "STEP_WORKER_STARTING"}
    ends = {e.step_key: e.timestamp for e in events
            if e.dagster_event.event_type_value == "STEP_SUCCESS"}
    return {step: (starts[step], ends[step]) for step in ends}


@pytest.mark.e2e
def test_a_multiprocess_run_with_parallel_steps_writes_every_table(tmp_path):
    root = tmp_path / "data"
    warehouse = Warehouse(database=str(root / "warehouse" / "mnc.duckdb"))
    _seed_tables(warehouse)
    home = prepare_dagster_home(tmp_path / "home", gpus=1)
    env = {**os.environ, "DAGSTER_HOME": str(home), "MNC_DATA_ROOT": str(root)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-f", "definitions.py",
         "-j", "sql_models_job"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    windows = _step_windows(home)
    assert set(windows) == {p.stem for p in (REPO / "dbt_like_sql").glob("*.sql")}
    overlapping = [(a, b) for a in windows for b in windows
                   if a < b and windows[a][0] < windows[b][1] and windows[b][0] < windows[a][1]]
    assert overlapping, f"no two step processes were alive at the same time: {windows}"
    tables = set(warehouse.read("SELECT table_name FROM information_schema.tables")["table_name"])
    models = {p.stem for p in (REPO / "dbt_like_sql").glob("*.sql")}
    assert models <= tables
    ranks = warehouse.read("SELECT model, dataset, rank FROM per_dataset_ranks ORDER BY 2, 1")
    assert ranks.values.tolist() == [["a", "x", 1], ["b", "x", 2], ["a", "y", 2], ["b", "y", 1]]
