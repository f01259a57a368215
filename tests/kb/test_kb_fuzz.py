"""Property-based tests (hypothesis) of the KB reader and both importers on random and
mutated files: every input either loads into a valid value or raises the reader's one
error type with a message naming the file; never another exception, never a silently
different value. Bounded: a few seconds in the default suite."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnc_core.ids import is_slug
from mnc_core.kb import store
from mnc_core.kb.importers.common import ImportInputError
from mnc_core.kb.importers.parc import import_parc
from mnc_core.kb.importers.transfergraph import import_transfergraph
from mnc_core.kb.store import KnowledgeBaseError, read_kb, score_range, write_kb
from mnc_core.textfiles import parse_number
from tests.kb.test_kb_importers import write_parc, write_transfergraph
from tests.kb.test_kb_store import small_kb

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Bytes that break parsers: NUL, BOM, quotes, separators, line ends, non-ASCII digits.
NASTY = st.sampled_from([b"\0", b"\xef\xbb\xbf", b'"', b",", b"\n", b"\r", b"\r\n", b"\xff",
                         "١".encode(), b"1e308", b"nan", b"-", b"_", b" "])
CHUNK = st.one_of(NASTY, st.binary(max_size=6), st.text(max_size=6).map(str.encode))
CELL = st.one_of(st.text(max_size=8), st.sampled_from(["1e308", "-1", "891", "nan", "inf",
                                                        "١٢", "0.5", "", " 3 ", "1_0"]))


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` with a few random edits: insertions, deletions, a cut-off end."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "cut"]))
        if kind == "insert":
            data = data[:at] + draw(CHUNK) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 8)):]
        else:
            data = data[:at]
    return data


def _check_valid(kb) -> None:
    """What a loaded KB promises: slug ids, finite values within their ranges."""
    low, high = score_range(kb.metric)
    assert kb.edges["score"].between(low, high).all()
    for table in (kb.model_features, kb.dataset_features):
        assert np.isfinite(table.to_numpy(dtype=float)).all()
        assert (np.abs(table.to_numpy(dtype=float)) <= store.VALUE_LIMIT).all()
        assert all(is_slug(i) for i in table.index)
    assert set(kb.edges["model"]) <= set(kb.models)


KB_FILES = (*store.REQUIRED_FILES, store.IDS_CSV)  # the files small_kb() writes


@pytest.fixture(scope="module")
def base_kb(tmp_path_factory) -> Path:
    return write_kb(small_kb(), tmp_path_factory.mktemp("fuzz") / "kb")


def _kb_copy(base: Path, folder: Path) -> Path:
    target = folder / "kb"
    target.mkdir()
    for name in KB_FILES:
        (target / name).write_bytes((base / name).read_bytes())
    return target


@FUZZ
@given(name=st.sampled_from(KB_FILES), data=st.data())
def test_kb_reader_on_mutated_files(base_kb: Path, name: str, data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = _kb_copy(base_kb, Path(tmp))
        file = folder / name
        file.write_bytes(data.draw(mutated(file.read_bytes())))
        try:
            kb = read_kb(folder)
        except KnowledgeBaseError as exc:
            assert str(folder) in str(exc) and "\n" not in str(exc)
            return
        _check_valid(kb)


@FUZZ
@given(row=st.integers(0, 4), value=CELL)
def test_kb_reader_reads_a_score_cell_exactly_or_refuses_it(
    base_kb: Path, row: int, value: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = _kb_copy(base_kb, Path(tmp))
        file = folder / store.EDGES_CSV
        lines = file.read_text().split("\n")
        cells = lines[row + 1].split(",")
        cells[2] = '"' + value.replace('"', '""') + '"'
        lines[row + 1] = ",".join(cells)
        file.write_text("\n".join(lines), encoding="utf-8", newline="")
        try:
            kb = read_kb(folder)
        except KnowledgeBaseError as exc:
            assert str(file) in str(exc)
            return
        assert kb.edges["score"].iloc[row] == parse_number(value)  # never a cut or shifted value
        _check_valid(kb)


@FUZZ
@given(rows=st.lists(st.tuples(CELL, CELL, CELL, CELL), min_size=1, max_size=6))
def test_parc_on_random_rows(rows: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        file = write_parc(Path(tmp) / "all.csv", rows)
        try:
            result = import_parc(file)
        except ImportInputError as exc:
            assert str(file) in str(exc) and "\n" not in str(exc)
            return
        _check_valid(result.kb)
        oracles = [v for v in (_number(r[3]) for r in rows) if v is not None and v >= 0]
        assert result.kb.edges["score"].between(min(oracles), max(oracles)).all()


@FUZZ
@given(name=st.sampled_from(["records.csv", "target_dataset_features.csv",
                             "model_config_dataset.csv", "corr_domain_similarity_test_gpt.csv"]),
       data=st.data())
def test_transfergraph_on_mutated_files(name: str, data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_transfergraph(Path(tmp) / "tg")
        file = folder / name
        file.write_bytes(data.draw(mutated(file.read_bytes())))
        try:
            result = import_transfergraph(folder)
        except ImportInputError as exc:
            assert str(folder) in str(exc) and "\n" not in str(exc)
            return
        _check_valid(result.kb)
        assert result.kb.edges["score"].between(0, 1).all()


def _number(text: str) -> float | None:
    try:
        value = parse_number(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
