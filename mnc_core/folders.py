"""Safe replacement of derived folders (caches) that a user may point at the wrong place.

A cache is rebuilt by writing a staging folder and swapping it in, which removes the
old folder. That is only safe when the old folder really is our cache: a user
folder, or the dataset itself, passed as the cache location must never be deleted.
`refuse_foreign_folder` decides that from the folder's marker file and entry names;
`swap_in` does the replacement so that readers never see a half-written folder.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path


class ForeignFolderError(ValueError):
    """A folder that would be replaced holds things that are not ours to delete."""


def _is_allowed(entry: Path, marker: str, patterns: Iterable[str]) -> bool:
    """A plain file (not a link) that this cache writes itself."""
    if entry.is_symlink() or not entry.is_file():
        return False
    return entry.name == marker or any(fnmatch.fnmatchcase(entry.name, p) for p in patterns)


def file_in_the_way(path: Path) -> Path | None:
    """The existing ancestor of `path` that is a file (so `path` cannot be created), if any."""
    return next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)


def refuse_foreign_folder(
    target: Path, marker: str, allowed_patterns: Iterable[str], what: str
) -> None:
    """Raise ForeignFolderError unless `target` may be replaced by a rebuilt `what`.

    It may be replaced when it does not exist, is empty, or holds `marker` and nothing
    but plain files whose names match `allowed_patterns`: a marker alone does not make
    a folder disposable, since notes kept beside a cache are not ours to delete.
    """
    target = Path(target)
    blocking = file_in_the_way(target)
    if blocking is not None:
        raise ForeignFolderError(f"{target}: {blocking} is a file, not a folder")
    if not target.exists():
        if target.is_symlink():
            raise ForeignFolderError(f"{target}: is a broken link; refusing to replace it")
        return
    if not target.is_dir():
        raise ForeignFolderError(f"{target}: exists and is not a folder; cannot hold the {what}")
    entries = sorted(target.iterdir())
    if not entries:
        return
    if not (target / marker).is_file():
        raise ForeignFolderError(
            f"{target}: folder is not empty and holds no {marker}, so it is not a {what}; "
            "refusing to replace it (choose another folder)"
        )
    patterns = list(allowed_patterns)
    foreign = [e.name + ("/" if e.is_dir() else "") for e in entries
               if not _is_allowed(e, marker, patterns)]
    if foreign:
        raise ForeignFolderError(
            f"{target}: holds {', '.join(foreign)}, which a {what} does not; refusing to "
            "replace it (move them away or choose another folder)"
        )


def swap_in(staging: Path, target: Path) -> None:
    """Rename the complete `staging` folder to `target`, removing the old one only after.

    If the second rename fails the old folder is put back. When `target` was a link
    to a folder, the link is replaced and what it pointed to is left alone.
    """
    staging, target = Path(staging), Path(target)
    if not target.exists() and not target.is_symlink():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, target)
        return
    backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(target, backup)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(backup, target)
        raise
    if backup.is_symlink():
        backup.unlink()
    else:
        shutil.rmtree(backup, ignore_errors=True)
