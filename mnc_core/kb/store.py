"""The on-disk knowledge base: one folder of CSV files plus `kb.json`.

Layout (documented for users in `docs/knowledge-base.md`):

    kb.json                 format_version, metric, higher_is_better, description,
                            synthetic, optional source and extra (JSON object)
    edges.csv               model, dataset, score[, score_before, cost]
    model_features.csv      model, <numeric feature columns...>
    dataset_features.csv    dataset, <numeric feature columns...> (zero columns allowed)
    dataset_distances.csv   dataset_a, dataset_b, distance (header only when unknown)
    ids.csv                 optional: kind, id, original (slug -> original name)
    aux_edges.csv           optional: model, dataset, recipe, score (the same models and
                            datasets fine-tuned with another recipe; absent = none)

Everything is validated on read, so the engine can trust a `KnowledgeBase` it gets
from `read_kb`; every problem raises `KnowledgeBaseError` naming the file and the
1-based data row, so a user can fix the CSV by hand. `write_kb` writes to a
temporary sibling folder, validates it by reading it back, then swaps it in: a
failed write never leaves a half-written KB and never loses the previous one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mnc_core.folders import ForeignFolderError, refuse_foreign_folder, staged_folder, swap_in
from mnc_core.ids import InvalidIdError, check_slug
from mnc_core.kb.csv_errors import CsvTextError, csv_error_text, read_csv_text
from mnc_core.kb.schema import (
    AUX_EDGE_COLUMNS,
    DISTANCE_COLUMNS,
    EDGE_COLUMNS,
    ID_MAP_COLUMNS,
    KnowledgeBase,
)
from mnc_core.textfiles import TextFileError, parse_number, read_text

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KB_JSON = "kb.json"
EDGES_CSV = "edges.csv"
MODEL_FEATURES_CSV = "model_features.csv"
DATASET_FEATURES_CSV = "dataset_features.csv"
DISTANCES_CSV = "dataset_distances.csv"
IDS_CSV = "ids.csv"
AUX_EDGES_CSV = "aux_edges.csv"
REQUIRED_FILES = (KB_JSON, EDGES_CSV, MODEL_FEATURES_CSV, DATASET_FEATURES_CSV, DISTANCES_CSV)
KB_FILES = (*REQUIRED_FILES, IDS_CSV, AUX_EDGES_CSV)
REQUIRED_EDGE_COLUMNS = EDGE_COLUMNS[:3]  # model, dataset, score
OPTIONAL_EDGE_COLUMNS = EDGE_COLUMNS[3:]  # score_before, cost
ID_KINDS = ("model", "dataset")
# Finite but absurd values are refused at load time, not met at the end of a run:
# every feature, distance, cost and score_before has |value| <= VALUE_LIMIT (the
# engine's random forest works in float32, max 3.4e38, and squares and sums values,
# so 1e308 passed as finite and crashed the Direct baseline after every fit was done).
VALUE_LIMIT = 1e12
FID_LIMIT = 1e4  # FID-like scores are >= 0; an FID this large means broken images
# Scores by the metric's declared scale (its name): TransferGraph's accuracies are
# fractions, PARC's Oracle percent. Other `*accuracy` names may use either scale.
SCORE_RANGES = {
    "eval_accuracy": (0.0, 1.0),
    "test_accuracy": (0.0, 1.0),
    "oracle_accuracy": (0.0, 100.0),
}
_FID_NAME = re.compile(r"(?:^|[_.-])fid(?:$|[_.-])")


class KnowledgeBaseError(ValueError):
    """A knowledge base folder (or value) that cannot be used; the message names file and row."""


def score_range(metric: str) -> tuple[float, float]:
    """The inclusive range a score of `metric` must lie in (one rule for reader and importers).

    Known names from `SCORE_RANGES`; FID-like names (`clip_fid`, `fid`, ...) are in
    [0, FID_LIMIT]; other names ending in `accuracy` in [0, 100] (fraction or percent);
    anything else only within +-VALUE_LIMIT.
    """
    name = metric.strip().lower()
    if name in SCORE_RANGES:
        return SCORE_RANGES[name]
    if _FID_NAME.search(name):
        return (0.0, FID_LIMIT)
    if name.endswith("accuracy"):
        return (0.0, 100.0)
    return (-VALUE_LIMIT, VALUE_LIMIT)


# --------------------------------------------------------------------------- reading


def read_kb(path: str | Path) -> KnowledgeBase:
    """Load and fully validate the knowledge base folder at `path`."""
    folder = Path(path)
    if not folder.is_dir():
        raise KnowledgeBaseError(f"{folder}: knowledge base folder not found")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise KnowledgeBaseError(
            f"{folder}: missing file(s) {', '.join(missing)}; a knowledge base folder needs "
            f"{', '.join(REQUIRED_FILES)} (see docs/knowledge-base.md)"
        )
    meta = _read_meta(folder / KB_JSON)
    model_features = _read_features(folder / MODEL_FEATURES_CSV, "model")
    dataset_features = _read_features(folder / DATASET_FEATURES_CSV, "dataset")
    scores = score_range(meta["metric"])
    edges = _read_edges(
        folder / EDGES_CSV, set(model_features.index), set(dataset_features.index), scores
    )
    distances = _read_distances(folder / DISTANCES_CSV, set(dataset_features.index))
    id_map = None
    if (folder / IDS_CSV).is_file():
        id_map = _read_id_map(folder / IDS_CSV, model_features.index, dataset_features.index)
    aux_edges = pd.DataFrame(columns=list(AUX_EDGE_COLUMNS))
    if (folder / AUX_EDGES_CSV).is_file():
        aux_edges = _read_aux_edges(
            folder / AUX_EDGES_CSV, set(model_features.index), set(dataset_features.index),
            scores,
        )
    return KnowledgeBase(
        edges=edges,
        metric=meta["metric"],
        higher_is_better=meta["higher_is_better"],
        model_features=model_features,
        dataset_features=dataset_features,
        dataset_distances=distances,
        description=meta["description"],
        synthetic=meta["synthetic"],
        extra=meta.get("extra", {}),
        source=meta.get("source", ""),
        id_map=id_map,
        aux_edges=aux_edges,
    )


def _read_meta(file: Path) -> dict:
    """Parse `kb.json` and check every field's type, naming the bad field."""
    try:
        meta = json.loads(read_text(file))
    except TextFileError as exc:
        raise KnowledgeBaseError(str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise KnowledgeBaseError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise KnowledgeBaseError(f"{file}: expected a JSON object")
    version = meta.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # not true, not 1.0
        raise KnowledgeBaseError(
            f"{file}: unknown format_version {version!r}; this version of mnc reads "
            f"format_version {FORMAT_VERSION}"
        )
    expected = {
        "metric": str,
        "higher_is_better": bool,
        "description": str,
        "synthetic": bool,
    }
    for key, kind in expected.items():
        if key not in meta:
            raise KnowledgeBaseError(f"{file}: missing field {key!r}")
        if not isinstance(meta[key], kind):
            raise KnowledgeBaseError(
                f"{file}: field {key!r} must be a JSON {kind.__name__}, got {meta[key]!r}"
            )
    if not meta["metric"].strip():
        raise KnowledgeBaseError(f"{file}: field 'metric' is empty; name the score (e.g. clip_fid)")
    if "source" in meta and not isinstance(meta["source"], str):
        raise KnowledgeBaseError(f"{file}: field 'source' must be a string")
    if "extra" in meta and not isinstance(meta["extra"], dict):
        raise KnowledgeBaseError(f"{file}: field 'extra' must be a JSON object")
    return meta


def _read_csv(file: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV as text (ids such as `nan` or `none` stay strings) and check its columns.

    Blank lines are read as rows (not skipped) so that every `row n` in an error is
    the n-th line after the header; blank lines at the end are dropped, one between
    data rows is an error.
    """
    try:
        text = read_csv_text(file)
    except CsvTextError as exc:
        raise KnowledgeBaseError(f"{file}: cannot parse as CSV ({exc.reason})") from exc
    try:
        table = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise KnowledgeBaseError(
            f"{file}: empty file; it needs at least the header line {','.join(required)}"
        ) from exc
    except pd.errors.ParserError as exc:
        raise KnowledgeBaseError(f"{file}: cannot parse as CSV ({csv_error_text(exc)})") from exc
    header = _header(text)
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise KnowledgeBaseError(f"{file}: duplicate column(s) {', '.join(duplicated)}")
    table.columns = header
    table = _without_blank_lines(file, table)
    absent = [c for c in required if c not in table.columns]
    if absent:
        raise KnowledgeBaseError(
            f"{file}: missing column(s) {', '.join(absent)} (found: {', '.join(table.columns)})"
        )
    return table


def _without_blank_lines(file: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Drop trailing blank lines; refuse one between data rows (naming its line)."""
    blank = (table == "").all(axis=1).to_numpy()
    last = len(blank)
    while last and blank[last - 1]:
        last -= 1
    inner = [row for row in range(last) if blank[row]]
    if inner:
        raise KnowledgeBaseError(f"{_where(file, inner[0])}: blank line; remove it")
    return table.iloc[:last]


def _header(text: str) -> list[str]:
    """The raw header names (pandas would silently rename a repeated column to `x.1`)."""
    return [name.strip() for name in next(csv.reader(io.StringIO(text, newline="")), [])]


def _where(file: Path, row: int) -> str:
    """`<file> row <n>` with n the 1-based data row (the header line is not counted)."""
    return f"{file} row {row + 1}"


def _check_ids(file: Path, values: pd.Series, column: str) -> list[str]:
    """Check every id in `column` is a slug; return them as a list."""
    ids = [str(v).strip() for v in values]
    for row, value in enumerate(ids):
        try:
            check_slug(value, f"{_where(file, row)}, column {column}")
        except InvalidIdError as exc:
            raise KnowledgeBaseError(str(exc)) from exc
    return ids


def _parse_numbers(
    file: Path,
    values: pd.Series,
    column: str,
    *,
    optional: bool = False,
    bounds: tuple[float, float] = (-VALUE_LIMIT, VALUE_LIMIT),
    why: str = f"|value| <= {VALUE_LIMIT:g}",
) -> np.ndarray:
    """Parse one column as finite floats within `bounds` (inclusive); empty cells become
    NaN only when `optional`. `why` names the range in the error (a metric, a limit)."""
    out = np.empty(len(values), dtype=float)
    for row, raw in enumerate(values):
        text = str(raw).strip()
        if text == "" and optional:
            out[row] = math.nan
            continue
        if text == "":
            raise KnowledgeBaseError(f"{_where(file, row)}: column {column} is empty")
        try:
            number = parse_number(text)  # not float(): it reads "1_000" and non-ASCII digits
        except ValueError as exc:
            raise KnowledgeBaseError(
                f"{_where(file, row)}: column {column} value {text!r} is not a number"
            ) from exc
        if not math.isfinite(number):
            hint = " (leave the cell empty when unknown)" if optional else ""
            raise KnowledgeBaseError(
                f"{_where(file, row)}: column {column} value {text!r} is not finite{hint}"
            )
        _check_bounds(file, row, column, number, bounds, why)
        out[row] = number
    return out


def _check_bounds(
    file: Path, row: int, column: str, number: float, bounds: tuple[float, float], why: str
) -> None:
    """Refuse a value outside `bounds`, naming file, row, column and the range."""
    low, high = bounds
    if low == 0 and number < 0:
        raise KnowledgeBaseError(f"{_where(file, row)}: column {column} value {number} is negative")
    if not low <= number <= high:
        raise KnowledgeBaseError(
            f"{_where(file, row)}: column {column} value {number:g} is outside "
            f"[{low:g}, {high:g}] ({why}; see docs/knowledge-base.md)"
        )


def _score_bounds(scores: tuple[float, float]) -> dict:
    """`_parse_numbers` keywords for a score column of the KB's metric."""
    return {"bounds": scores, "why": "the range of the KB's metric"}


def _read_features(file: Path, id_column: str) -> pd.DataFrame:
    """A feature table: first column the id, every other column numeric and finite."""
    table = _read_csv(file, (id_column,))
    if table.columns[0] != id_column:
        raise KnowledgeBaseError(
            f"{file}: the first column must be {id_column!r}, found {table.columns[0]!r}"
        )
    if table.empty:
        raise KnowledgeBaseError(f"{file}: no rows; every {id_column} needs a row")
    ids = _check_ids(file, table[id_column], id_column)
    _reject_duplicates(file, ids, f"{id_column} feature row")
    data = {
        column: _parse_numbers(file, table[column], column)
        for column in table.columns
        if column != id_column
    }
    index = pd.Index(ids, name=id_column)
    return pd.DataFrame(data, index=index, columns=[c for c in table.columns if c != id_column])


def _reject_duplicates(file: Path, keys: list, what: str) -> None:
    """Raise on the first key seen twice, naming both rows."""
    seen: dict = {}
    for row, key in enumerate(keys):
        if key in seen:
            raise KnowledgeBaseError(
                f"{_where(file, row)}: duplicate {what} {key!r} (first at row {seen[key] + 1})"
            )
        seen[key] = row


def _check_known(file: Path, ids: list[str], known: set[str], column: str, table: str) -> None:
    """Every id in an edge or distance must have a row in the matching feature table."""
    for row, value in enumerate(ids):
        if value not in known:
            raise KnowledgeBaseError(
                f"{_where(file, row)}: {column} {value!r} is not in {table}; add a feature row "
                f"for it or fix the id"
            )


def _read_edges(
    file: Path, models: set[str], datasets: set[str], scores: tuple[float, float]
) -> pd.DataFrame:
    """Model-dataset results: known ids, one row per pair, scores within the metric's range."""
    table = _read_csv(file, REQUIRED_EDGE_COLUMNS)
    if table.empty:
        raise KnowledgeBaseError(
            f"{file}: no rows; a knowledge base needs at least one (model, dataset) result"
        )
    model_ids = _check_ids(file, table["model"], "model")
    dataset_ids = _check_ids(file, table["dataset"], "dataset")
    _check_known(file, model_ids, models, "model", MODEL_FEATURES_CSV)
    _check_known(file, dataset_ids, datasets, "dataset", DATASET_FEATURES_CSV)
    _reject_duplicates(file, list(zip(model_ids, dataset_ids, strict=True)), "(model, dataset)")
    edges = pd.DataFrame({"model": model_ids, "dataset": dataset_ids})
    edges["score"] = _parse_numbers(file, table["score"], "score", **_score_bounds(scores))
    for column in OPTIONAL_EDGE_COLUMNS:
        if column in table.columns:
            low = 0.0 if column == "cost" else -VALUE_LIMIT
            edges[column] = _parse_numbers(
                file, table[column], column, optional=True, bounds=(low, VALUE_LIMIT)
            )
        else:
            edges[column] = math.nan
    return edges[list(EDGE_COLUMNS)]


def _read_aux_edges(
    file: Path, models: set[str], datasets: set[str], scores: tuple[float, float]
) -> pd.DataFrame:
    """Auxiliary results (another recipe): known ids, one row per triple, finite scores.

    Optional file, so an old KB stays valid; a header without rows means no auxiliary
    results (unlike edges.csv, which must not be empty).
    """
    table = _read_csv(file, AUX_EDGE_COLUMNS)
    model_ids = _check_ids(file, table["model"], "model")
    dataset_ids = _check_ids(file, table["dataset"], "dataset")
    recipes = _check_ids(file, table["recipe"], "recipe")
    _check_known(file, model_ids, models, "model", MODEL_FEATURES_CSV)
    _check_known(file, dataset_ids, datasets, "dataset", DATASET_FEATURES_CSV)
    triples = list(zip(model_ids, dataset_ids, recipes, strict=True))
    _reject_duplicates(file, triples, "(model, dataset, recipe)")
    score = _parse_numbers(file, table["score"], "score", **_score_bounds(scores))
    return pd.DataFrame(
        {"model": model_ids, "dataset": dataset_ids, "recipe": recipes, "score": score}
    )[list(AUX_EDGE_COLUMNS)]


def _read_distances(file: Path, datasets: set[str]) -> pd.DataFrame:
    """Dataset-dataset distances: known ids, no self-pairs, each unordered pair once, >= 0."""
    table = _read_csv(file, DISTANCE_COLUMNS)
    a_ids = _check_ids(file, table["dataset_a"], "dataset_a")
    b_ids = _check_ids(file, table["dataset_b"], "dataset_b")
    _check_known(file, a_ids, datasets, "dataset_a", DATASET_FEATURES_CSV)
    _check_known(file, b_ids, datasets, "dataset_b", DATASET_FEATURES_CSV)
    for row, (a, b) in enumerate(zip(a_ids, b_ids, strict=True)):
        if a == b:
            raise KnowledgeBaseError(f"{_where(file, row)}: self-pair {a!r}-{b!r}")
    pairs = [tuple(sorted(pair)) for pair in zip(a_ids, b_ids, strict=True)]
    _reject_duplicates(file, pairs, "unordered dataset pair")
    distance = _parse_numbers(file, table["distance"], "distance", bounds=(0.0, VALUE_LIMIT))
    return pd.DataFrame({"dataset_a": a_ids, "dataset_b": b_ids, "distance": distance})[
        list(DISTANCE_COLUMNS)
    ]


def _read_id_map(file: Path, models: pd.Index, datasets: pd.Index) -> pd.DataFrame:
    """The optional slug -> original name table written by importers."""
    table = _read_csv(file, ID_MAP_COLUMNS)
    known = {"model": set(models), "dataset": set(datasets)}
    for row, (kind, slug, original) in enumerate(
        zip(table["kind"], table["id"], table["original"], strict=True)
    ):
        if kind not in ID_KINDS:
            raise KnowledgeBaseError(
                f"{_where(file, row)}: kind {kind!r} must be one of {', '.join(ID_KINDS)}"
            )
        if slug not in known[kind]:
            raise KnowledgeBaseError(f"{_where(file, row)}: {kind} id {slug!r} is not in the KB")
        if not original.strip():
            raise KnowledgeBaseError(f"{_where(file, row)}: original name is empty")
    return table[list(ID_MAP_COLUMNS)].reset_index(drop=True)


# --------------------------------------------------------------------------- writing


def write_kb(kb: KnowledgeBase, path: str | Path) -> Path:
    """Write `kb` to the folder `path` atomically and return the path.

    The KB is written to a temporary sibling folder and read back with `read_kb`
    (so an invalid KB is refused with the same messages a user would see), then
    renamed into place. An existing KB at `path` is replaced only after the new one
    is complete; a folder at `path` that is not a KB (and not empty) is refused.
    """
    target = Path(path)
    _write_checked(kb, target)
    return target


def write_and_read_kb(kb: KnowledgeBase, path: str | Path) -> KnowledgeBase:
    """`write_kb`, returning what `read_kb(path)` gives afterwards: the read-back
    `write_kb` validates with anyway (the files are the same), so it is not read twice."""
    return _write_checked(kb, Path(path))


def _write_checked(kb: KnowledgeBase, target: Path) -> KnowledgeBase:
    _refuse_foreign_folder(target)
    with staged_folder(target) as staging:
        _write_files(kb, staging)
        try:
            written = read_kb(staging)
        except KnowledgeBaseError as exc:
            message = str(exc).replace(str(staging), str(target))
            raise KnowledgeBaseError(
                f"refusing to write an invalid knowledge base: {message}"
            ) from exc
        swap_in(staging, target)
    log.debug("wrote knowledge base %s (%d edges)", target, len(kb.edges))
    return written


def _refuse_foreign_folder(target: Path) -> None:
    """Never replace something that is not a knowledge base (user data could be lost).

    The folder rule is `mnc_core.folders` (only KB files beside kb.json); on top of it,
    the kb.json must be a KB manifest (have format_version).
    """
    try:
        refuse_foreign_folder(target, KB_JSON, KB_FILES, "knowledge base")
    except ForeignFolderError as exc:
        raise KnowledgeBaseError(f"{exc}; choose another --out") from exc
    if not (target / KB_JSON).is_file():
        return  # absent or empty: nothing to lose
    try:
        version = json.loads((target / KB_JSON).read_text(encoding="utf-8")).get("format_version")
    except (OSError, ValueError, AttributeError):
        version = None
    if version is None:
        raise KnowledgeBaseError(
            f"{target / KB_JSON}: not a knowledge-base manifest (no format_version); "
            "refusing to replace the folder"
        )


def _write_files(kb: KnowledgeBase, folder: Path) -> None:
    """Serialise every part of `kb` into `folder` (no validation here: read_kb does it)."""
    meta = {
        "format_version": FORMAT_VERSION,
        "metric": kb.metric,
        "higher_is_better": bool(kb.higher_is_better),
        "description": kb.description,
        "synthetic": bool(kb.synthetic),
    }
    if kb.source:
        meta["source"] = kb.source
    if kb.extra:
        meta["extra"] = kb.extra
    try:
        text = json.dumps(meta, indent=2, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise KnowledgeBaseError(f"{KB_JSON}: metadata is not JSON-serialisable ({exc})") from exc
    (folder / KB_JSON).write_text(text + "\n", encoding="utf-8")
    edges = kb.edges.copy()
    for column in OPTIONAL_EDGE_COLUMNS:
        if column not in edges.columns:
            edges[column] = math.nan
    edges[list(EDGE_COLUMNS)].to_csv(folder / EDGES_CSV, index=False)
    kb.model_features.to_csv(folder / MODEL_FEATURES_CSV, index=True, index_label="model")
    kb.dataset_features.to_csv(folder / DATASET_FEATURES_CSV, index=True, index_label="dataset")
    kb.dataset_distances.reindex(columns=list(DISTANCE_COLUMNS)).to_csv(
        folder / DISTANCES_CSV, index=False
    )
    if kb.id_map is not None:
        kb.id_map.reindex(columns=list(ID_MAP_COLUMNS)).to_csv(folder / IDS_CSV, index=False)
    if not kb.aux_edges.empty:
        kb.aux_edges.reindex(columns=list(AUX_EDGE_COLUMNS)).to_csv(
            folder / AUX_EDGES_CSV, index=False
        )
