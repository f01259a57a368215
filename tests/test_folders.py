"""The shared cache-folder helpers: never replace user data, swap a rebuilt cache in safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mnc_core.folders import ForeignFolderError, refuse_foreign_folder, swap_in

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
