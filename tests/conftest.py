"""Test-wide settings: offline, single-threaded numba (reproducible pecanpy walks), and
the one folder snapshot behind every "nothing was changed or deleted" check, and the
one user folder that a cache must refuse to replace."""

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, bytes]]:
    """`snapshot(folder)`: every file under `folder` (relative path -> bytes)."""

    def take(folder: Path) -> dict[str, bytes]:
        folder = Path(folder)
        return {p.relative_to(folder).as_posix(): p.read_bytes()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    return take


@pytest.fixture
def foreign_folder(tmp_path: Path) -> Path:
    """A user's folder (one file of theirs) passed where a cache folder is expected."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "precious.txt").write_text("do not delete")
    return folder
