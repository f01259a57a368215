"""Safe replacement of derived folders (caches) that a user may point at the wrong place.

A cache is rebuilt by writing a staging folder and swapping it in, which removes the
old folder. That is only safe when the old folder really is our cache: a user
folder, or the dataset itself, passed as the cache location must never be deleted.
`refuse_foreign_folder` decides that from the folder's marker file and entry names;
`swap_in` does the replacement so that readers never see a half-written folder.

The one staging rule: every writer stages beside its target under
`.<target name>.writing-<host>-<pid>-<random>` (`staged_folder`, `leftover_name`), and
`swap_in` keeps the old version as `.<target name>.old-<host>-<pid>-<random>` until the
new one is in place. A writer that is interrupted removes its staging itself (any
BaseException: Ctrl-C, SIGTERM under `mnc`, a cancelled Dagster step); one that is
killed outright cannot, so the next write of the same target sweeps what dead writers
of this host left (`sweep_leftovers`): staging is deleted, and an old version whose
target is missing is put back.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

# `.<name>.<kind>-<host>-<pid>-<8 hex>`; the name may itself contain dots.
_LEFTOVER = re.compile(
    r"^\.(?P<name>.+)\.(?P<kind>writing|old)-(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)-[0-9a-f]{8}$"
)


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
    backup = leftover_name(target, "old")
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


def _host() -> str:
    """This machine's name as it appears in leftover names (letters, digits, dashes)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def leftover_name(target: Path, kind: str = "writing") -> Path:
    """A fresh name beside `target` for staging (`writing`) or the replaced version (`old`).

    Host and pid are in the name so that `sweep_leftovers` can tell a dead writer's
    leftovers from those of a writer still at work.
    """
    target = Path(target)
    name = f".{target.name}.{kind}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return target.parent / name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _dead_writers_leftovers(target: Path) -> list[tuple[Path, str]]:
    """(path, kind) of the leftovers beside `target` of writers on this host that are gone."""
    if not target.parent.is_dir():
        return []
    found = []
    for entry in target.parent.iterdir():
        match = _LEFTOVER.match(entry.name)
        if (match and match["name"] == target.name and match["host"] == _host()
                and not _alive(int(match["pid"]))):
            found.append((entry, match["kind"]))
    return sorted(found)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_leftovers(target: Path) -> None:
    """Remove what killed writers of `target` left; restore an old version if `target` is gone.

    Only leftovers named by `leftover_name` on this host whose process is dead are
    touched: another writer's live staging (or another machine's, on a shared disk)
    is left alone. Never raises: a leftover that cannot be removed is logged.
    """
    target = Path(target)
    try:
        for path, kind in _dead_writers_leftovers(target):
            if kind == "old" and not target.exists() and not target.is_symlink():
                os.rename(path, target)
                log.warning("%s: restored the previous version left by a killed write", target)
            else:
                _remove(path)
    except OSError as exc:
        log.warning("%s: could not remove a killed writer's leftovers (%s)", target, exc)


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A new empty staging folder beside `target`, removed when the block ends without
    having moved it into place (an error, Ctrl-C, SIGTERM, a cancelled step).

    Created with the permissions `mkdir` gives (the user's umask), unlike mkdtemp's 0700.
    Leftovers of killed writers of `target` are swept first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(target)
    staging = leftover_name(target)
    staging.mkdir()
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
