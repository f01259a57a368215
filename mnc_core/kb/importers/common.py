"""Helpers shared by the importers: id mapping, feature encoding, drop accounting.

Every importer turns someone else's table into a `KnowledgeBase` the same way:
names become slugs through `mnc_core.ids.slugify` (the original names are kept in
the KB's `ids.csv`), categorical columns are one-hot encoded, numeric columns are
log-scaled and standardised, missing values become an indicator column plus a
neutral 0 (so the engine never sees NaN), and every dropped row is counted under
a reason that is printed after the import.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mnc_core.ids import InvalidIdError, slugify
from mnc_core.kb.csv_errors import CsvTextError, csv_error_text, read_csv_text
from mnc_core.kb.schema import ID_MAP_COLUMNS, KnowledgeBase
from mnc_core.kb.store import VALUE_LIMIT, score_range
from mnc_core.textfiles import is_number, number_or_nan

log = logging.getLogger(__name__)


class ImportInputError(ValueError):
    """Input that an importer cannot turn into a knowledge base (names the file)."""


@dataclass
class ImportResult:
    """The imported KB plus how many input rows were dropped, by reason."""

    kb: KnowledgeBase
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class DropCounter:
    """Counts rows an importer leaves out, keyed by a human-readable reason."""

    counts: Counter = field(default_factory=Counter)

    def drop(self, mask: pd.Series, reason: str) -> pd.Series:
        """Record `mask.sum()` rows under `reason`; return the keep-mask (`~mask`)."""
        n = int(mask.sum())
        if n:
            self.counts[reason] += n
            log.debug("dropping %d row(s): %s", n, reason)
        return ~mask

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


# Every cell is read as text and only an empty cell means "missing": names such as
# "none" or "NA" stay text, a number column holding "n/a" is reported instead of
# silently becoming NaN, and numbers go through the one number rule
# (`mnc_core.textfiles.parse_number`: plain ASCII decimal, `nan`, `inf`), not pandas'.
CSV_MISSING = {"keep_default_na": False, "na_values": [""], "dtype": str}


@dataclass(frozen=True)
class NameSource:
    """Where a set of names was read, so an unusable name can be traced to its cell.

    `values` holds the names as the importer uses them (stripped), indexed like the
    table `read_table` returned (possibly filtered), so `data_row` finds the row.
    """

    file: Path
    column: str
    values: pd.Series


def read_table(
    file: Path, required: Iterable[str], *, ragged: bool = False, **options: object
) -> pd.DataFrame:
    """Read an input CSV; a missing file or column raises naming the file.

    `ragged`: rows may leave out trailing cells after the required columns (read as
    missing), for writers that do so; otherwise every row has the header's cells.
    """
    required = tuple(required)
    if not file.is_file():
        raise ImportInputError(f"{file}: file not found")
    try:
        text = read_csv_text(file, required if ragged else None)  # the one CSV rule
    except CsvTextError as exc:
        raise ImportInputError(f"{file}: cannot read as CSV ({exc.reason})") from exc
    try:
        table = pd.read_csv(io.StringIO(text), **CSV_MISSING, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ImportInputError(f"{file}: cannot read as CSV ({csv_error_text(exc)})") from exc
    absent = [c for c in required if c not in table.columns]
    if absent:
        raise ImportInputError(
            f"{file}: missing column(s) {', '.join(absent)} "
            f"(found: {', '.join(map(str, table.columns))})"
        )
    return table


def data_row(index: pd.Index, position: int) -> int:
    """The 1-based data row of the file for the row at `position` of a (filtered) table.

    An integer index label is read_csv's row number, so it survives filtering; any
    other index falls back to the position.
    """
    label = index[position]
    return (int(label) if isinstance(label, (int, np.integer)) else position) + 1


def numeric_column(table: pd.DataFrame, column: str, file: Path) -> pd.Series:
    """A column as floats; text that is not a number raises naming file, row and column.

    `nan` text becomes NaN, like an empty cell, so callers drop or flag it together
    with `inf` instead of aborting on one float literal but not the other.
    """
    cells = table[column]
    readable = cells.isna() | cells.map(lambda cell: isinstance(cell, float) or is_number(cell))
    _refuse_cells(table, column, file, ~readable, "a number")
    return cells.map(number_or_nan).astype(float)


def scores_in_range(table: pd.DataFrame, column: str, file: Path, metric: str) -> None:
    """Refuse a finite score outside the metric's range (`store.score_range`), naming its row.

    Why here and not only when the KB is read back: the error then names the user's
    file and row, not a row of the KB being written.
    """
    low, high = score_range(metric)
    values = numeric_column(table, column, file)
    _refuse_cells(table, column, file, np.isfinite(values) & ((values < low) | (values > high)),
                  f"within [{low:g}, {high:g}] (the range of {metric}; see docs/knowledge-base.md)")


def beyond_limit(values: pd.Series) -> pd.Series:
    """Finite values larger in size than the KB's `VALUE_LIMIT` (absurd, not just large)."""
    return np.isfinite(values) & (values.abs() > VALUE_LIMIT)


def feature_column(
    table: pd.DataFrame, column: str, file: Path, *, positive: bool = False
) -> pd.Series:
    """A feature column as floats: not-a-number text, infinity (and with `positive`, a
    value <= 0) raise naming file, row and column; empty cells stay NaN (missing).

    Why: features are standardised over the whole column, so one infinite value would
    silently flatten it for every model or dataset.
    """
    values = numeric_column(table, column, file)
    bad = np.isinf(values) | ((values <= 0) if positive else False)
    _refuse_cells(table, column, file, bad,
                  "a finite number > 0" if positive else "a finite number")
    return values


def _refuse_cells(
    table: pd.DataFrame, column: str, file: Path, bad: pd.Series, need: str
) -> None:
    """Raise naming file, data row, column and value of the first `bad` cell, if any."""
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        cell = table[column].iloc[position]
        shown = cell.strip() if is_number(cell) else repr(cell)  # a number as written
        raise ImportInputError(
            f"{file} row {data_row(table.index, position)}: column {column} value "
            f"{shown} is not {need}"
        )


def slug_map(names: Iterable[str], source: NameSource | None = None) -> dict[str, str]:
    """Original name -> slug via `slugify`; names whose slugs collide get a hash suffix.

    Two different names can slugify alike (case, punctuation, truncation at 128
    characters); each of them then gets `-<8 hex of sha1(name)>` so the mapping is
    one-to-one and does not depend on input order. A name with no slug (e.g. `???`)
    raises `ImportInputError` naming the cell of `source` that holds it.
    """
    unique = sorted({str(n) for n in names})
    plain = {name: _slug(name, source) for name in unique}
    taken = Counter(plain.values())
    mapping = {}
    for name, slug in plain.items():
        if taken[slug] > 1:
            digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
            slug = f"{slug[:119]}-{digest}"
        mapping[name] = slug
    return mapping


def _slug(name: str, source: NameSource | None) -> str:
    """`slugify(name)`; its bare "cannot make a slug" error gains file, row and column."""
    try:
        return slugify(name)
    except InvalidIdError as exc:
        if source is None:
            raise
        held = np.flatnonzero((source.values.astype(str) == name).to_numpy())
        where = f" row {data_row(source.values.index, int(held[0]))}" if len(held) else ""
        raise ImportInputError(
            f"{source.file}{where}: column {source.column} value {name!r} cannot become an "
            "id (it has no ASCII letter or digit)"
        ) from exc


def id_map_table(models: dict[str, str], datasets: dict[str, str]) -> pd.DataFrame:
    """The `ids.csv` table (kind, id, original) for the ids kept in the KB."""
    rows = [("model", slug, name) for name, slug in models.items()]
    rows += [("dataset", slug, name) for name, slug in datasets.items()]
    return pd.DataFrame(rows, columns=list(ID_MAP_COLUMNS))


def column_key(value: object) -> str:
    """A readable, CSV-safe column-name suffix for a category value."""
    text = re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_")
    return text or "blank"


def one_hot(values: pd.Series, prefix: str) -> pd.DataFrame:
    """One column per category (`<prefix>_<value>`), sorted; missing values -> all zeros
    plus `<prefix>_missing` when any value is missing."""
    present = values.notna()
    columns: dict[str, np.ndarray] = {}
    for category in sorted({str(v) for v in values[present]}):
        name = f"{prefix}_{column_key(category)}"
        hit = ((values.astype(str) == category) & present).to_numpy(dtype=float)
        columns[name] = columns.get(name, 0.0) + hit
    if (~present).any():
        columns[f"{prefix}_missing"] = (~present).to_numpy(dtype=float)
    return pd.DataFrame(columns, index=values.index)


def scaled_numbers(values: pd.Series, name: str, *, log_scale: bool) -> pd.DataFrame:
    """Optionally `log1p`, then standardise; missing -> 0 (the mean) + `<name>_missing`.

    Negative values are not log-scaled (log1p is only meaningful for counts and
    sizes); a constant column becomes all zeros.
    """
    numbers = values.astype(float)
    if log_scale and (numbers.dropna() >= 0).all():
        numbers = np.log1p(numbers)
    mean, std = numbers.mean(), numbers.std(ddof=0)
    scaled = (numbers - mean) / std if std and np.isfinite(std) and std > 0 else numbers * 0.0
    frame = pd.DataFrame({name: scaled.fillna(0.0)}, index=values.index)
    if numbers.isna().any():
        frame[f"{name}_missing"] = numbers.isna().astype(float)
    return frame


def average_duplicates(
    edges: pd.DataFrame, keys: list[str], drops: DropCounter, what: str
) -> pd.DataFrame:
    """Average repeated runs of one (model, dataset) into one edge (NaN-aware), counted."""
    repeated = edges.duplicated(keys, keep="first")
    if repeated.any():
        drops.counts[f"repeated runs of one {what} averaged into one edge"] += int(repeated.sum())
    return edges.groupby(keys, sort=False, as_index=False).mean(numeric_only=True)
