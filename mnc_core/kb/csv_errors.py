"""One wording for CSV files pandas cannot parse, shared by the KB reader and importers."""

from __future__ import annotations

import re

_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


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
