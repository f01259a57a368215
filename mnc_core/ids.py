"""The one rule for model and dataset ids.

Ids become Dagster partition keys (joined with `|` in multi-partitions) and path
components under the data root, so they must be slugs: lower-case letters, digits,
`.`, `_` and `-`, starting with a letter or digit. No `/`, `|`, `,`, `[`, `]`.
"""

from __future__ import annotations

import re

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class InvalidIdError(ValueError):
    """An id that is not a slug."""


def is_slug(value: str) -> bool:
    """True when `value` can serve as a model or dataset id."""
    return isinstance(value, str) and bool(SLUG_RE.match(value)) and ".." not in value


def check_slug(value: str, where: str) -> str:
    """Return `value` unchanged, or raise `InvalidIdError` naming `where` (file and row)."""
    if not is_slug(value):
        raise InvalidIdError(
            f"{where}: id {value!r} is not a slug (allowed: a-z 0-9 . _ -, "
            f"starting with a letter or digit, no '..', at most 128 characters)"
        )
    return value


def slugify(value: str) -> str:
    """Map a free-form name (e.g. a Hugging Face repo id `org/name`) to a slug.

    Used by importers; the mapping is deterministic and documented: lower-case,
    every run of characters outside [a-z0-9._-] becomes `--` for `/` and `-` otherwise.
    """
    text = str(value).strip().lower().replace("/", "--")
    text = re.sub(r"[^a-z0-9._-]+", "-", text).strip("-._")
    text = re.sub(r"\.{2,}", ".", text)
    if not text:
        raise InvalidIdError(f"cannot make a slug from {value!r}")
    return text[:128]
