"""The shared cache-folder helpers: never replace user data, swap a rebuilt cache in safely."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mnc_core.folders import (
    ForeignFolderError,
    leftover_name,
    refuse_foreign_folder,
    staged_folder,
    swap_in,
    sweep_leftovers,
)

PATTERNS = ("data-*.bin",)


def _cache(folder: Path, payload: str = "old") -> Path:
    folder.mkdir()
    (folder / "marker.json").write_text("{}")
    (folder / "data-0.bin").write_text(payload)
    return folder


def test_missing_empty_or_pure_cache_folders_may_be_replaced(tmp_path: Path) -> None:
    refuse_foreign_folder(tmp_path / "absent", "marker.json", PATTERNS, "cache")
    (tmp_path / "empty").mkdir()
    refuse_foreign_folder(tmp_path / "empty", "marker.json", PATTERNS, "cache")
    refuse_foreign_folder(_cache(tmp_path / "c"), "marker.json", PATTERNS, "cache")


@pytest.mark.parametrize("extra", ["precious.txt", "sub/"])
def test_foreign_entries_are_named_in_the_refusal(tmp_path: Path, extra: str) -> None:
    folder = _cache(tmp_path / "c")
    if extra.endswith("/"):
        (folder / extra).mkdir()
    else:
        (folder / extra).write_text("x")
    with pytest.raises(ForeignFolderError, match=rf"{folder}.*{extra}"):
        refuse_foreign_folder(folder, "marker.json", PATTERNS, "cache")


def test_folder_without_marker_or_a_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "data-0.bin").write_text("x")
    with pytest.raises(ForeignFolderError, match="marker.json"):
        refuse_foreign_folder(folder, "marker.json", PATTERNS, "cache")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        refuse_foreign_folder(tmp_path / "file", "marker.json", PATTERNS, "cache")


def test_swap_in_replaces_the_old_folder_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = _cache(tmp_path / "c")
    staging = _cache(tmp_path / ".staging", "new")
    swap_in(staging, target)
    assert (target / "data-0.bin").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_swap_in_restores_the_old_folder_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _cache(tmp_path / "c")
    real_rename = os.rename

    def failing(src, dst):
        if Path(src).name == "missing-staging":
            raise OSError("disk full")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError, match="disk full"):
        swap_in(tmp_path / "missing-staging", target)
    assert (target / "data-0.bin").read_text() == "old"


def test_swap_in_over_a_link_keeps_what_it_pointed_to(tmp_path: Path) -> None:
    real = _cache(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    swap_in(_cache(tmp_path / ".staging", "new"), link)
    assert not link.is_symlink() and (link / "data-0.bin").read_text() == "new"
    assert (real / "data-0.bin").read_text() == "old"


class StepCancelled(BaseException):
    """Stands for Dagster's interrupt of a cancelled step (a BaseException)."""


def _dead_pid() -> int:
    """The pid of a process that has already exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _leftover_of(target: Path, pid: int, kind: str = "writing", host: str | None = None) -> Path:
    """What a writer with `pid` on `host` leaves beside `target` (the one naming rule)."""
    own = leftover_name(target, kind).name
    prefix, _, rest = own.rpartition(f"-{os.getpid()}-")
    if host is not None:
        prefix = prefix.rsplit(".", 1)[0] + f".{kind}-{host}"
    path = target.parent / f"{prefix}-{pid}-{rest}"
    path.mkdir()
    return path


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, StepCancelled, OSError])
def test_staged_folder_is_removed_when_the_write_is_interrupted(
    tmp_path: Path, interrupt: type[BaseException]
) -> None:
    with pytest.raises(interrupt), staged_folder(tmp_path / "c") as staging:
        (staging / "part.bin").write_text("half")
        raise interrupt()
    assert list(tmp_path.iterdir()) == []


def test_staged_folder_has_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with staged_folder(tmp_path / "c") as staging:
            assert staging.stat().st_mode & 0o777 == 0o750
            swap_in(staging, tmp_path / "c")
    finally:
        os.umask(old)
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o750


def test_the_next_write_sweeps_dead_writers_leftovers_only(tmp_path: Path) -> None:
    target = _cache(tmp_path / "c")
    dead = _leftover_of(target, _dead_pid())
    dead_old = _leftover_of(target, _dead_pid(), "old")
    live = _leftover_of(target, os.getpid())  # a writer at work (this process)
    other_host = _leftover_of(target, _dead_pid(), host="elsewhere")  # its pids are not ours
    other_target = _leftover_of(tmp_path / "d", _dead_pid())
    with staged_folder(target) as staging:
        swap_in(staging, target)
    remaining = {p.name for p in tmp_path.iterdir()}
    assert dead.name not in remaining and dead_old.name not in remaining
    assert {live.name, other_host.name, other_target.name, "c"} <= remaining


def test_an_old_version_whose_target_is_gone_is_put_back(tmp_path: Path) -> None:
    """A writer killed between swap_in's two renames leaves only the old version."""
    target = tmp_path / "c"
    backup = _leftover_of(target, _dead_pid(), "old")
    (backup / "data-0.bin").write_text("previous")
    sweep_leftovers(target)
    assert (target / "data-0.bin").read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
