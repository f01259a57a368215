"""SQL models: every `dbt_like_sql/*.sql` file becomes one Dagster asset.

A model is one DuckDB SELECT (or WITH) query in a file named after the table it
builds. Its dependencies are read from the SQL itself with sqlglot (the field's SQL
parser, no templating language of our own): a table it reads is either another SQL
model or a warehouse table of `mnc_resources.tables.TABLES`, whose asset is found in
the `producers` mapping. Adding a file adds an asset; no Python changes.

Loading refuses what would give a wrong graph (a bad file name, an unknown table, a
cycle), naming the files. A query that DuckDB rejects fails only its own asset, with
the file name and DuckDB's message, at materialisation.
"""

import graphlib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import sqlglot
from sqlglot import exp

from mnc_resources.tables import TABLES
from mnc_resources.warehouse import Warehouse

SQL_FOLDER = Path(__file__).resolve().parents[1] / "dbt_like_sql"
"""The project's SQL models."""

GROUP_NAME = "sql_models"
PREVIEW_ROWS = 5
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class SqlModelError(ValueError):
    """The SQL models cannot be loaded as a graph (bad names, unknown tables, a cycle)."""


@dataclass(frozen=True)
class SqlModel:
    """One `.sql` file: the table `name` it builds and the tables it reads.

    `problem` is set when sqlglot cannot read the file as a single query; such a model
    loads (so the others do) with no references, and its asset fails when run.
    """

    name: str
    path: Path
    sql: str
    references: frozenset[str]
    problem: str | None = None

    @property
    def description(self) -> str:
        """The file's leading `--` comment lines: what the table holds."""
        lines = []
        for line in self.sql.splitlines():
            if not line.startswith("--"):
                break
            lines.append(line.removeprefix("--").strip())
        return "\n".join(lines)


def parse_query(sql: str) -> exp.Query:
    """The file's one SELECT/WITH query (`ValueError` if it holds anything else)."""
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as error:
        raise ValueError(f"sqlglot cannot parse it: {str(error).splitlines()[0]}") from None
    statements = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ValueError("it is not a single SELECT/WITH query")
    return statements[0]


def table_references(query: exp.Query) -> frozenset[str]:
    """Names of the tables a query reads (lower case), its own CTE names excluded."""
    ctes = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    tables = {t.name.lower() for t in query.find_all(exp.Table) if t.name}
    return frozenset(tables - ctes)


def read_model(path: Path) -> SqlModel:
    """Parse one file; a file that is not one query gives a model with a `problem`."""
    sql = path.read_text(encoding="utf-8")
    try:
        references = table_references(parse_query(sql))
    except ValueError as problem:
        return SqlModel(path.stem, path, sql, frozenset(), str(problem))
    return SqlModel(path.stem, path, sql, references)


def load_sql_models(folder: Path) -> list[SqlModel]:
    """Every model of `folder`, each after the models it reads.

    Refused (`SqlModelError`, naming the files): a file name that is not a lower-case
    identifier or that is a warehouse table's name, a reference to a table that is
    neither a model nor a warehouse table, and a cycle.
    """
    models = {m.name: m for m in map(read_model, sorted(Path(folder).glob("*.sql")))}
    problems = [p for m in models.values() for p in _name_problems(m, models)]
    if problems:
        raise SqlModelError("SQL models refused:\n" + "\n".join(problems))
    sorter = graphlib.TopologicalSorter(
        {name: sorted(m.references & models.keys()) for name, m in models.items()}
    )
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as error:
        cycle = " -> ".join(f"{name}.sql" for name in error.args[1])
        raise SqlModelError(f"SQL models refused: they read each other: {cycle}") from None
    return [models[name] for name in order]


def _name_problems(model: SqlModel, models: Mapping[str, SqlModel]) -> list[str]:
    problems = []
    if not _NAME.fullmatch(model.name):
        problems.append(f"{model.path.name}: the file name must be a lower-case identifier")
    if model.name in TABLES:
        problems.append(f"{model.path.name}: {model.name!r} is a warehouse table written in Python")
    for name in sorted(model.references - models.keys() - TABLES.keys()):
        problems.append(f"{model.path.name}: reads {name!r}, neither a SQL model nor a table")
    return problems


def sql_model_assets(
    folder: Path, producers: Mapping[str, dg.AssetKey]
) -> list[dg.AssetsDefinition]:
    """One asset per SQL model of `folder`, in dependency order.

    `producers` maps each warehouse table a model reads to the asset that writes it,
    so a model runs after the Python assets it reads, as after the models it reads.
    """
    models = load_sql_models(folder)
    names = {m.name for m in models}
    unwritten = sorted({r for m in models for r in m.references - names if r not in producers})
    if unwritten:
        raise SqlModelError(f"SQL models read tables no asset writes: {unwritten}")
    return [
        _asset(m, {dg.AssetKey(r) if r in names else producers[r] for r in m.references})
        for m in models
    ]


def _asset(model: SqlModel, deps: set[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(model.name),
        deps=sorted(deps, key=lambda key: key.to_user_string()),
        group_name=GROUP_NAME,
        description=model.description,
        kinds={"duckdb", "sql"},
        code_version=hashlib.sha256(model.sql.encode()).hexdigest()[:16],
        metadata={"sql_file": dg.MetadataValue.path(str(model.path))},
    )
    def build_table(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as conn:
            return dg.MaterializeResult(metadata=_create_table(conn, model))

    return build_table


def _create_table(conn: duckdb.DuckDBPyConnection, model: SqlModel) -> dict:
    """`CREATE OR REPLACE` the model's table in one transaction; its metadata."""
    try:
        conn.extract_statements(model.sql)  # DuckDB's own syntax check, runs nothing
        if model.problem:
            raise dg.Failure(description=f"{model.path.name}: {model.problem}")
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(f"CREATE OR REPLACE TABLE {model.name} AS\n{model.sql}\n")
            metadata = _table_metadata(conn, model.name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except duckdb.Error as error:
        raise dg.Failure(description=f"{model.path.name}: {error}") from error
    return metadata


def _table_metadata(conn: duckdb.DuckDBPyConnection, name: str) -> dict:
    """Row count, column schema and the first rows (markdown) of a table."""
    (n_rows,) = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
    columns = conn.execute(f"DESCRIBE {name}").fetchall()
    preview = conn.execute(f"SELECT * FROM {name} LIMIT {PREVIEW_ROWS}").df()
    return {
        "dagster/row_count": n_rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=c[0], type=c[1]) for c in columns]
        ),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
    }
