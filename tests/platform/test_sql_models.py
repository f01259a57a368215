"""The SQL models: loading (order, sqlglot dependencies, refusals naming the files),
materialisation (a broken file fails alone, in one transaction) and every real model's
output against values computed by hand on a few rows."""

import math
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mnc_assets.sql_models import (
    SQL_FOLDER,
    SqlModelError,
    load_sql_models,
    parse_query,
    sql_model_assets,
    table_references,
)
from mnc_core.engine.metrics import mean_normalised_rank
from mnc_resources.tables import TABLES
from mnc_resources.warehouse import Warehouse

PRODUCERS = {name: dg.AssetKey(["python", name]) for name in TABLES}


def write_models(folder: Path, **files: str) -> Path:
    """`folder` holding one `<name>.sql` per keyword argument."""
    folder.mkdir(exist_ok=True)
    for name, sql in files.items():
        (folder / f"{name}.sql").write_text(sql)
    return folder


def failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Failed step -> its error message."""
    return {e.step_key: e.step_failure_data.error.message
            for e in result.get_step_failure_events()}


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(database=str(tmp_path / "w.duckdb"))


def execute(warehouse: Warehouse, *statements: str) -> None:
    with warehouse.connect() as conn:
        for sql in statements:
            conn.execute(sql)


# --- loading -----------------------------------------------------------------------


def test_references_are_the_tables_read_not_ctes_or_table_functions():
    sql = """
        WITH recent AS (SELECT * FROM Evaluations WHERE value > 0),
             best AS (SELECT * FROM recent)
        SELECT * FROM best
        JOIN main.fid_edges AS e ON true
        JOIN (SELECT model FROM model_features) AS f USING (model)
        CROSS JOIN range(3)
        WHERE e.model IN (SELECT model FROM per_dataset_ranks)
    """
    assert table_references(parse_query(sql)) == {
        "evaluations", "fid_edges", "model_features", "per_dataset_ranks"}


def test_models_load_after_the_models_they_read(tmp_path):
    folder = write_models(
        tmp_path / "sql",
        alpha="SELECT * FROM beta",
        beta="WITH alpha_like AS (SELECT * FROM gamma) SELECT * FROM alpha_like",
        gamma="SELECT model FROM fid_edges",
    )
    models = load_sql_models(folder)
    assert [m.name for m in models] == ["gamma", "beta", "alpha"]
    assert {m.name: m.references for m in models} == {
        "gamma": {"fid_edges"}, "beta": {"gamma"}, "alpha": {"beta"}}


def test_the_real_models_load_in_dependency_order():
    models = load_sql_models(SQL_FOLDER)
    names = [m.name for m in models]
    assert {"staged_fid_edges", "per_dataset_ranks", "overall_ranking", "matrix_coverage",
            "evaluation_history", "latest_evaluation"} <= set(names)
    for position, model in enumerate(models):
        assert model.references & set(names) <= set(names[:position]), model.name
    by_name = {m.name: m for m in models}
    assert by_name["per_dataset_ranks"].references == {"staged_fid_edges"}  # CTE "ranked"
    assert by_name["staged_fid_edges"].references == {"fid_edges", "knowledge_metric"}


def test_asset_deps_are_the_models_and_the_producers_of_the_tables_read():
    producers = {**PRODUCERS, "fid_edges": dg.AssetKey("knowledge"),
                 "knowledge_metric": dg.AssetKey("knowledge")}
    assets = {a.key.to_user_string(): a for a in sql_model_assets(SQL_FOLDER, producers)}
    staged = assets["staged_fid_edges"]
    assert set(staged.asset_deps[staged.key]) == {dg.AssetKey("knowledge")}
    coverage = assets["matrix_coverage"]
    assert set(coverage.asset_deps[coverage.key]) == {
        dg.AssetKey("knowledge"), PRODUCERS["dataset_features"], PRODUCERS["model_features"],
        dg.AssetKey("staged_fid_edges")}
    spec = next(iter(coverage.specs))
    assert spec.group_name == "sql_models"
    assert spec.description.startswith("How much of the model x dataset matrix is known")
    assert "SELECT" not in spec.description


def test_unknown_reference_is_refused_naming_file_and_table(tmp_path):
    folder = write_models(tmp_path / "sql", good="SELECT * FROM fid_edges",
                          bad="SELECT * FROM fid_edges JOIN no_such_table USING (model)")
    with pytest.raises(SqlModelError) as refused:
        load_sql_models(folder)
    message = str(refused.value)
    assert "bad.sql" in message and "no_such_table" in message
    assert "good.sql" not in message


def test_cycle_is_refused_naming_its_files(tmp_path):
    folder = write_models(tmp_path / "sql", first="SELECT * FROM second",
                          second="SELECT * FROM first", apart="SELECT * FROM fid_edges")
    with pytest.raises(SqlModelError) as refused:
        load_sql_models(folder)
    message = str(refused.value)
    assert "first.sql" in message and "second.sql" in message
    assert "apart.sql" not in message


def test_a_model_reading_itself_is_a_cycle(tmp_path):
    folder = write_models(tmp_path / "sql", loop="SELECT * FROM loop")
    with pytest.raises(SqlModelError, match="loop.sql"):
        load_sql_models(folder)


@pytest.mark.parametrize("stem", ["Bad-Name", "2nd", "fid_edges"])
def test_bad_file_names_are_refused(tmp_path, stem):
    folder = write_models(tmp_path / "sql", ok="SELECT 1 AS x")
    (folder / f"{stem}.sql").write_text("SELECT 1 AS x")
    with pytest.raises(SqlModelError, match=f"{stem}.sql"):
        load_sql_models(folder)


def test_a_table_no_asset_writes_is_refused(tmp_path):
    folder = write_models(tmp_path / "sql", history="SELECT * FROM evaluations")
    producers = {k: v for k, v in PRODUCERS.items() if k != "evaluations"}
    with pytest.raises(SqlModelError, match="evaluations"):
        sql_model_assets(folder, producers)


# --- materialisation -------------------------------------------------------------


def test_a_broken_model_fails_alone_with_file_name_and_duckdb_message(tmp_path, warehouse):
    folder = write_models(
        tmp_path / "sql",
        good="SELECT model FROM fid_edges",
        unbound="SELECT no_such_column FROM fid_edges",
        syntax="SELECT model FROM fid_edges WHERE",
        downstream="SELECT * FROM unbound",
    )
    execute(warehouse, "INSERT INTO fid_edges (model, dataset, score) VALUES ('m1', 'd1', 1)")
    result = dg.materialize(sql_model_assets(folder, PRODUCERS),
                            resources={"warehouse": warehouse}, raise_on_error=False)
    failed = failures(result)
    assert set(failed) == {"unbound", "syntax"}
    assert "unbound.sql" in failed["unbound"] and "Binder Error" in failed["unbound"]
    assert "no_such_column" in failed["unbound"]
    assert "syntax.sql" in failed["syntax"] and "Parser Error" in failed["syntax"]
    assert result.asset_materializations_for_node("good")
    assert not result.asset_materializations_for_node("downstream")
    assert warehouse.read("SELECT * FROM good")["model"].tolist() == ["m1"]


def test_more_than_one_statement_fails_and_runs_nothing(tmp_path, warehouse):
    folder = write_models(tmp_path / "sql", sneaky="SELECT 1 AS x; DROP TABLE fid_edges")
    execute(warehouse, "INSERT INTO fid_edges (model, dataset, score) VALUES ('m1', 'd1', 1)")
    result = dg.materialize(sql_model_assets(folder, PRODUCERS),
                            resources={"warehouse": warehouse}, raise_on_error=False)
    assert "sneaky.sql" in failures(result)["sneaky"]
    assert "single SELECT" in failures(result)["sneaky"]
    assert len(warehouse.read("SELECT * FROM fid_edges")) == 1


def test_a_failed_rebuild_keeps_the_previous_table(tmp_path, warehouse):
    folder = write_models(tmp_path / "sql", names="SELECT 'kept' AS name")
    assert dg.materialize(sql_model_assets(folder, PRODUCERS),
                          resources={"warehouse": warehouse}).success
    write_models(folder, names="SELECT 'new' AS name UNION ALL SELECT CAST('x' AS INTEGER)")
    result = dg.materialize(sql_model_assets(folder, PRODUCERS),
                            resources={"warehouse": warehouse}, raise_on_error=False)
    assert "Conversion Error" in failures(result)["names"]
    assert warehouse.read("SELECT * FROM names")["name"].tolist() == ["kept"]


def test_materialisation_records_rows_schema_and_preview(tmp_path, warehouse):
    folder = write_models(
        tmp_path / "sql",
        squares="-- Squares of 1..7.\nSELECT i, i * i AS square FROM range(1, 8) t(i) ORDER BY i",
    )
    result = dg.materialize(sql_model_assets(folder, PRODUCERS),
                            resources={"warehouse": warehouse})
    metadata = result.asset_materializations_for_node("squares")[0].metadata
    assert metadata["dagster/row_count"].value == 7
    schema = metadata["dagster/column_schema"].schema
    assert [(c.name, c.type) for c in schema.columns] == [("i", "BIGINT"), ("square", "BIGINT")]
    preview = metadata["preview"].md_str
    assert "square" in preview and "25" in preview
    assert "36" not in preview  # the first 5 rows only: squares 1..25


# --- the real models, by hand ----------------------------------------------------
# Metric: CLIP-FID, lower is better, so goodness = -score.
#   d1: m1 10, m2 20, m3 20 -> ranks m1 1, m2 2, m3 2; normalised (avg rank - 1) / 2:
#       m1 0, m2 and m3 (2.5 - 1) / 2 = 0.75
#   d2: m2 5, m1 30 (m3 NULL: not known) -> m2 1 (0), m1 2 (1)
#   d3: m3 7, m2 9 (m1 NaN: not known)   -> m3 1 (0), m2 2 (1)
# Overall: m3 (0.75 + 0) / 2 = 0.375, m1 (0 + 1) / 2 = 0.5, m2 (0.75 + 0 + 1) / 3 = 7/12
EDGES = [("m1", "d1", 10.0), ("m2", "d1", 20.0), ("m3", "d1", 20.0), ("m1", "d2", 30.0),
         ("m2", "d2", 5.0), ("m3", "d3", 7.0), ("m2", "d3", 9.0)]
UNKNOWN_EDGES = "('m1', 'd3', 'nan'::DOUBLE), ('m3', 'd2', NULL)"


def load_edges(warehouse: Warehouse, higher_is_better: bool) -> None:
    rows = ", ".join(f"('{m}', '{d}', {s}, 'here')" for m, d, s in EDGES)
    execute(
        warehouse,
        f"INSERT INTO knowledge_metric VALUES ('clip_fid', {higher_is_better})",
        f"INSERT INTO fid_edges (model, dataset, score, provenance) VALUES {rows}",
        f"INSERT INTO fid_edges (model, dataset, score) VALUES {UNKNOWN_EDGES}",
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Warehouse:
    """The real models materialised over the edges above, features and evaluations."""
    warehouse = Warehouse(database=str(tmp_path_factory.mktemp("w") / "w.duckdb"))
    load_edges(warehouse, higher_is_better=False)
    execute(
        warehouse,
        "INSERT INTO dataset_features (dataset) VALUES ('d1'), ('d4')",
        "INSERT INTO model_features (model) VALUES ('m1'), ('m4')",
        # loo runs at 09:00 ("r-z"), 10:00 ("r-a"), 11:00 ("r-m"): time order, not id order
        """INSERT INTO evaluations (run_id, evaluated_at, protocol, level, method, metric,
                                    value, n_datasets) VALUES
           ('r-m', '2026-01-01 11:00', 'loo', 'all', 'mnc', 'osr', 0.6, 32),
           ('r-z', '2026-01-01 09:00', 'loo', 'all', 'mnc', 'osr', 0.5, 32),
           ('r-z', '2026-01-01 09:00', 'loo', 'all', 'overall', 'osr', 0.4, 32),
           ('r-a', '2026-01-01 10:00', 'loo', 'all', 'mnc', 'osr', 0.75, 32),
           ('r-a', '2026-01-01 10:00', 'loo', 'all', 'overall', 'osr', 0.4, 32),
           ('s-1', '2026-01-01 10:30', 'sparsity', '0.1', 'mnc', 'osr', 0.3, 30),
           ('s-1', '2026-01-01 10:30', 'sparsity', '0.5', 'mnc', 'osr', 0.2, 28)""",
    )
    assert dg.materialize(sql_model_assets(SQL_FOLDER, PRODUCERS),
                          resources={"warehouse": warehouse}).success
    return warehouse


def rows(warehouse: Warehouse, table: str, columns: str) -> list[tuple]:
    return [tuple(r) for r in warehouse.read(f"SELECT {columns} FROM {table}").itertuples(
        index=False)]


def test_staged_edges_are_the_finite_ones_with_goodness_minus_a_distance(built):
    assert sorted(rows(built, "staged_fid_edges", "model, dataset, score, goodness, metric")) \
        == sorted((m, d, s, -s, "clip_fid") for m, d, s in EDGES)


def test_per_dataset_ranks(built):
    assert rows(built, "per_dataset_ranks", "dataset, model, rank, n_models, normalised_rank") \
        == [("d1", "m1", 1, 3, 0.0), ("d1", "m2", 2, 3, 0.75), ("d1", "m3", 2, 3, 0.75),
            ("d2", "m2", 1, 2, 0.0), ("d2", "m1", 2, 2, 1.0),
            ("d3", "m3", 1, 2, 0.0), ("d3", "m2", 2, 2, 1.0)]


def test_ranks_follow_the_metric_direction(tmp_path, warehouse):
    load_edges(warehouse, higher_is_better=True)
    wanted = {"staged_fid_edges", "per_dataset_ranks"}
    assets = [a for a in sql_model_assets(SQL_FOLDER, PRODUCERS)
              if a.key.to_user_string() in wanted]
    assert dg.materialize(assets, resources={"warehouse": warehouse}).success
    d1 = warehouse.read("SELECT model, goodness, rank FROM per_dataset_ranks WHERE dataset='d1'")
    # higher is better now: m2 and m3 (20) tie for first, m1 (10) is third
    assert sorted(map(tuple, d1.to_numpy().tolist())) == [
        ("m1", 10.0, 3), ("m2", 20.0, 1), ("m3", 20.0, 1)]


def test_overall_ranking(built):
    got = rows(built, "overall_ranking", "model, mean_normalised_rank, n_datasets, overall_rank")
    assert [(m, n, r) for m, _, n, r in got] == [("m3", 2, 1), ("m1", 2, 2), ("m2", 3, 3)]
    assert [mean for _, mean, _, _ in got] == pytest.approx([0.375, 0.5, 7 / 12])


def test_overall_ranking_is_the_engines_overall_baseline(built):
    matrix = pd.DataFrame(EDGES, columns=["model", "dataset", "score"]).pivot(
        index="dataset", columns="model", values="score")
    engine = mean_normalised_rank(matrix, higher_is_better=False)
    sql = built.read("SELECT model, mean_normalised_rank FROM overall_ranking")
    assert sql.set_index("model")["mean_normalised_rank"].sort_index().tolist() \
        == pytest.approx(engine.sort_index().tolist())


def test_matrix_coverage(built):
    # datasets: d1, d4 (features) + d1, d2, d3 (edges) = 4; models: m1, m4 + m1..m3 = 4.
    # known: m2 on d1, d2, d3; m1 on d1, d2 (d3 NaN); m3 on d1, d3 (d2 NULL); m4 none.
    assert rows(built, "matrix_coverage", "model, n_datasets_known, n_datasets, coverage") \
        == [("m2", 3, 4, 0.75), ("m1", 2, 4, 0.5), ("m3", 2, 4, 0.5), ("m4", 0, 4, 0.0)]


def test_evaluation_history(built):
    got = rows(built, "evaluation_history",
               "protocol, level, method, run_number, run_id, value, previous_value, change")
    mnc = [r for r in got if r[:3] == ("loo", "all", "mnc")]
    assert [r[3:6] for r in mnc] == [(1, "r-z", 0.5), (2, "r-a", 0.75), (3, "r-m", 0.6)]
    assert math.isnan(mnc[0][6]) and math.isnan(mnc[0][7])  # NULL: no previous run
    assert [r[6] for r in mnc[1:]] == [0.5, 0.75]
    assert [r[7] for r in mnc[1:]] == pytest.approx([0.25, -0.15])
    overall = [r for r in got if r[:3] == ("loo", "all", "overall")]
    assert [(r[4], r[7]) for r in overall[1:]] == [("r-a", 0.0)]
    sparsity = [r for r in got if r[0] == "sparsity"]
    assert [(r[1], r[3]) for r in sparsity] == [("0.1", 1), ("0.5", 1)]  # levels apart


def test_latest_evaluation(built):
    got = rows(built, "latest_evaluation", "protocol, level, method, run_id, value, change")
    assert [r[:5] for r in got] == [("loo", "all", "mnc", "r-m", 0.6),
                                    ("sparsity", "0.1", "mnc", "s-1", 0.3),
                                    ("sparsity", "0.5", "mnc", "s-1", 0.2)]
    assert got[0][5] == pytest.approx(-0.15)
