"""The one rule for the text mnc reads from users' files, and the one number rule.

Every file the project is given to read (the knowledge-base CSVs and `kb.json`, the
importers' CSVs, an imagefolder's `metadata.jsonl`) is decoded here, so a file is
never accepted by one reader and refused by another:

- UTF-8, strictly: a replaced byte would silently change a name or a caption.
- A UTF-8 byte-order mark at the very start of a file is accepted and ignored
  (spreadsheet programs write one); a BOM anywhere else is an ordinary character.
- A NUL byte is refused, naming the line: CSV parsers end the cell there (a score
  `30.77<NUL>46` was read as 30.77, an id `sdxl<NUL>junk` as `sdxl`), so nothing read
  from such a file could be trusted.

Numbers in these files are plain ASCII decimal or scientific notation (`12`, `-0.5`,
`.5`, `2e-3`), or the float literals `nan` / `inf` / `infinity` (any case, signed),
which each reader then accepts or refuses. Python's `float()` would also read `1_000`
and non-ASCII digits such as `١٢`; `parse_number` does not.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

BOM = "\ufeff"
BOM_BYTES = BOM.encode("utf-8")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_SPECIAL = re.compile(r"[+-]?(?:nan|inf|infinity)", re.ASCII | re.IGNORECASE)


class TextFileError(ValueError):
    """Text that breaks the rule; `reason` and `line` let each reader word its own error."""

    def __init__(self, where: str, line: int, reason: str) -> None:
        super().__init__(f"{where} line {line}: {reason}")
        self.where, self.line, self.reason = where, line, reason


def decode(data: bytes, where: str, *, start_of_file: bool = True, first_line: int = 1) -> str:
    """Bytes -> text by the rule (strict UTF-8, leading BOM dropped, no NUL).

    `start_of_file` says whether `data` begins the file (only there is a BOM dropped);
    `first_line` is the file line `data` starts on, so errors name the file's line.
    """
    if start_of_file and data.startswith(BOM_BYTES):
        data = data[len(BOM_BYTES):]
    nul = data.find(b"\0")
    if nul >= 0:
        line = first_line + data.count(b"\n", 0, nul)
        reason = "NUL byte (the file is damaged: a cell would be cut there)"
        raise TextFileError(where, line, reason)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        raise TextFileError(where, line, f"not valid UTF-8 ({err.reason})") from err


def read_text(file: Path) -> str:
    """The whole file decoded by the rule; errors name the file and its line."""
    return decode(Path(file).read_bytes(), str(file))


def parse_number(text: str) -> float:
    """A number cell by the one number rule; `ValueError` for anything else.

    Surrounding whitespace is ignored; `nan` and `inf` literals are returned as such
    (the caller decides whether a non-finite value is allowed).
    """
    cell = text.strip()
    if _DECIMAL.fullmatch(cell) or _SPECIAL.fullmatch(cell):
        return float(cell)
    raise ValueError(f"not a plain decimal number: {text!r}")


def is_number(text: object) -> bool:
    """True when `text` is a string that `parse_number` reads."""
    if not isinstance(text, str):
        return False
    try:
        parse_number(text)
    except ValueError:
        return False
    return True


def number_or_nan(cell: object) -> float:
    """A cell of a table read as text: a missing cell (NaN) stays NaN, text is parsed.

    Raises `ValueError` for text that is not a number, so callers can name the cell.
    """
    if isinstance(cell, float) and math.isnan(cell):
        return math.nan
    return parse_number(str(cell))
