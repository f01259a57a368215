"""The DuckDB warehouse: short, serialised connections and whole-partition writes.

DuckDB lets one process hold the file read-write, and while it does no other process
can open it at all (not even read-only). Steps of a multiprocess run therefore never
keep a connection: every read or write opens the file, does its work in one
transaction and closes it, under an exclusive `flock` on a sibling lock file, so
concurrent steps queue for a few milliseconds instead of failing on DuckDB's lock.
No connection is ever held across a GPU step. A step that reads several tables
opens the file once: inside an outer `connect()`, the reads and writes of the same
warehouse in the same thread reuse its connection (each open, with its first catalogue
query, costs tens of milliseconds, the larger part of a short read).

A partition's rows are replaced in one transaction (`DELETE` of exactly that
partition's keys, then `INSERT`), so re-materialising a partition touches no other
row, and a failed write leaves the previous rows in place.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from dagster_duckdb import DuckDBResource

from mnc_resources.tables import TABLES, Table

_OPEN = threading.local()  # resolved database path -> this thread's connection on it


class Warehouse(DuckDBResource):
    """`DuckDBResource` with a cross-process lock and the project's table writes."""

    @contextmanager
    def connect(self) -> Iterator:
        """A DuckDB connection held under the warehouse lock; closed (and unlocked) after.

        Re-entrant: inside an outer `connect()` of the same warehouse in this thread it
        yields the outer connection (the outer one closes it). Hold it for a batch of
        short reads, never across long work: no other process can open the file meanwhile.
        """
        path = Path(self.database)
        key = str(path.resolve())  # one file however its path is spelled
        held = getattr(_OPEN, "connections", {})
        if key in held:
            yield held[key]
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with self.get_connection() as conn:
                    _OPEN.connections = {**held, key: conn}
                    try:
                        _create_tables(conn)
                        yield conn
                    finally:
                        _OPEN.connections = held
                        conn.close()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """The result of one query as a DataFrame."""
        with self.connect() as conn:
            return conn.execute(sql, params or []).df()

    def read_table(self, name: str, where: Mapping[str, str] | None = None) -> pd.DataFrame:
        """Rows of a project table (optionally one partition's), columns in schema order."""
        table = TABLES[name]
        clause, params = _where(where or {})
        return self.read(f"SELECT {table.select_list} FROM {name}{clause}", params)

    def replace_partition(self, name: str, keys: Mapping[str, str], rows: pd.DataFrame) -> int:
        """Replace the rows of one partition (`keys`: its key columns) in one transaction."""
        table = TABLES[name]
        if set(keys) != set(table.partition_columns):
            raise ValueError(
                f"table {name}: partition keys {sorted(keys)} are not its partition columns "
                f"{list(table.partition_columns)}"
            )
        frame = table.conform(rows)
        for column, value in keys.items():
            if not (frame[column] == value).all():
                raise ValueError(f"table {name}: a row's {column} is not {value!r}")
        clause, params = _where(keys)
        return self._write(table, f"DELETE FROM {name}{clause}", params, frame)

    def replace_table(self, name: str, rows: pd.DataFrame) -> int:
        """Replace every row of an unpartitioned table in one transaction."""
        table = TABLES[name]
        return self._write(table, f"DELETE FROM {name}", [], table.conform(rows))

    def append(self, name: str, rows: pd.DataFrame) -> int:
        """Append rows (history tables such as evaluations keep every run)."""
        table = TABLES[name]
        return self._write(table, None, [], table.conform(rows))

    def _write(self, table: Table, delete: str | None, params: list, frame: pd.DataFrame) -> int:
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                if delete is not None:
                    conn.execute(delete, params)
                if len(frame):
                    conn.register("incoming_rows", frame)
                    conn.execute(
                        f"INSERT INTO {table.name} ({table.select_list}) "
                        f"SELECT {table.select_list} FROM incoming_rows"
                    )
                    conn.unregister("incoming_rows")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(frame)


def _create_tables(conn) -> None:
    """Create missing tables, and add columns a newer schema has to a table an older
    version of the platform created (rows kept, the new columns null): a warehouse
    outlives code versions, and `CREATE TABLE IF NOT EXISTS` alone would leave it stale.

    One catalogue query first: every connection pays it, while the DDL statements (a
    few milliseconds each, most of a short read's cost) run only when something is missing.
    """
    present = _present_columns(conn)
    if all((t.name, c) in present for t in TABLES.values() for c, _ in t.columns):
        return
    for table in TABLES.values():
        conn.execute(table.create_sql)
    present = _present_columns(conn)
    for table in TABLES.values():
        for column, kind in table.columns:
            if (table.name, column) not in present:
                conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column} {kind}")


def _present_columns(conn) -> set[tuple[str, str]]:
    """(table, column) of every column in the warehouse's current schema."""
    return set(map(tuple, conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema()").fetchall()))


def _where(keys: Mapping[str, str]) -> tuple[str, list]:
    if not keys:
        return "", []
    return " WHERE " + " AND ".join(f"{c} = ?" for c in keys), list(keys.values())
