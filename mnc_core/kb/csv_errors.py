"""The one CSV rule of the KB reader and the importers, and one wording for its errors.

Every CSV they read goes through `read_csv_text` before pandas sees it: the text rule
of `mnc_core.textfiles` (strict UTF-8, a leading BOM ignored, no NUL byte), then two
checks pandas does not make. pandas pads a row with fewer cells than the header with
empty cells, and a file cut off in its last cell (a copy interrupted mid-number) reads
as a shorter number; so a row whose cell count differs from the header's is refused
naming the row, and a file whose last line has no line end is read with a warning
(refusing it would refuse real files saved without a final newline, such as
TransferGraph's target_dataset_features.csv).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Collection
from pathlib import Path

from mnc_core.textfiles import TextFileError, read_text

log = logging.getLogger(__name__)
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class CsvTextError(ValueError):
    """A CSV file that breaks the rule; `reason` is the one-line why (file not included)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_csv_text(file: Path, ragged_after: Collection[str] | None = None) -> str:
    """The file's text, checked by the CSV rule; `CsvTextError` says what is wrong.

    `ragged_after`: for a file whose writer leaves out trailing empty cells (TransferGraph's
    model_config_dataset.csv), a row may end early once it holds these columns; its
    missing cells are then read as empty. A short last line without a line end is
    still refused: that is a file cut off.
    """
    try:
        text = read_text(file)
    except TextFileError as exc:
        raise CsvTextError(f"line {exc.line}: {exc.reason}") from exc
    cut_off = bool(text.strip()) and not text.endswith(("\n", "\r"))
    if cut_off:
        log.warning(
            "%s: the last line has no line end; if the file was cut off (an interrupted "
            "copy), its last value may be shortened: check it, and end the file with a newline",
            file,
        )
    _check_cell_counts(text, ragged_after, cut_off)
    return text


def _check_cell_counts(text: str, ragged_after: Collection[str] | None, cut_off: bool) -> None:
    """Every non-blank row has as many cells as the header (row n = n-th record after it)."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CsvTextError(" ".join(str(exc).split())) from exc
    if not rows:
        return
    header, body = rows[0], rows[1:]
    least = _least_cells(header, ragged_after)
    for row_number, cells in enumerate(body, start=1):
        if not cells or len(cells) == len(header):
            continue
        last = row_number == len(body)
        if len(cells) > len(header) or len(cells) < least or (last and cut_off):
            reason = f"row {row_number} has {len(cells)} cells, the header {len(header)}"
            raise CsvTextError(reason + (" (the file is cut off)" if last and cut_off else ""))


def _least_cells(header: list[str], ragged_after: Collection[str] | None) -> int:
    """How many cells a row needs: all of the header's, or enough to hold `ragged_after`."""
    if ragged_after is None:
        return len(header)
    names = [name.strip() for name in header]
    return max((names.index(c) + 1 for c in ragged_after if c in names), default=len(header))


def csv_error_text(exc: Exception) -> str:
    """A one-line reason, with pandas' physical line turned into the data row.

    Why: pandas says "Expected 200 fields in line 3, saw 201" and ends with a newline;
    every other error of the KB names "row n" = the n-th line after the header.
    """
    found = _FIELDS.search(str(exc))
    if found:
        expected, line, seen = map(int, found.groups())
        return f"row {line - 1} has {seen} cells, the header {expected}"
    return " ".join(str(exc).split())
