"""Test-wide settings: offline, single-threaded numba (reproducible pecanpy walks), and
the one folder snapshot behind every "nothing was changed or deleted" check."""

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
