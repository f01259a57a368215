"""Every resource of the platform, declared once (`platform_resources`).

Local defaults need no configuration: everything lives under one data root
(`MNC_DATA_ROOT`, default `out/platform` in the repository), laid out by
`mnc_core.paths.DataLayout`. Each path can also be set on its own from the
environment (`MNC_MODEL_STORE`, `MNC_LANDING`, `MNC_ACCEPTED`, `MNC_WAREHOUSE`,
`MNC_KB_FOLDERS`), and the GPU and CLIP settings likewise (`MNC_DEVICE`, `MNC_DTYPE`,
`MNC_GPU_MEMORY_FRACTION`, `MNC_CLIP_MODEL`, `MNC_CLIP_CHECKPOINT`), and the engine's
(`MNC_RANKER`, `MNC_SEED`, `MNC_WALKS`, `MNC_ITERATIONS`, as `mnc evaluate`'s flags;
`MNC_SHORTLIST_TARGET`, `MNC_STOP_PROBABILITY`, as `mnc rank --shortlist --probability`
and `mnc next --stop-probability`).
Heavy libraries (torch, open_clip) are imported inside the methods that need them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mnc_core.paths import DataLayout
from mnc_resources.compute import ClipSettings, GpuResource
from mnc_resources.settings import (
    DEFAULT_SHORTLIST_TARGET,
    DEFAULT_STOP_PROBABILITY,
    EngineConfig,
    KnowledgeImports,
    T2ISettings,
)
from mnc_resources.stores import ArtifactStore, DatasetStore, ModelStore
from mnc_resources.warehouse import Warehouse

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = REPO_ROOT / "out" / "platform"
SHORTLIST_TARGET_ENV = "MNC_SHORTLIST_TARGET"
STOP_PROBABILITY_ENV = "MNC_STOP_PROBABILITY"

__all__ = [
    "ArtifactStore",
    "ClipSettings",
    "DatasetStore",
    "EngineConfig",
    "GpuResource",
    "KnowledgeImports",
    "ModelStore",
    "T2ISettings",
    "Warehouse",
    "data_root",
    "platform_resources",
]


def data_root(env: Mapping[str, str] | None = None) -> Path:
    """The data root: `MNC_DATA_ROOT`, else `out/platform` in the repository."""
    env = os.environ if env is None else env
    return Path(env.get("MNC_DATA_ROOT") or DEFAULT_DATA_ROOT).resolve()


def _optional_int(text: str | None) -> int | None:
    return int(text) if text else None


def probability_setting(env: Mapping[str, str], name: str, default: float) -> float:
    """A probability from `env[name]` (unset or empty: `default`), in (0, 1]; a bad value
    is refused naming the variable, before any asset runs on it."""
    text = env.get(name) or ""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:  # NaN fails too
        raise ValueError(f"{name}={text!r} is not a probability in (0, 1]")
    return value


def platform_resources(env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The resources under their keys, configured from `env` (default: the environment)."""
    env = os.environ if env is None else env
    layout = DataLayout(data_root(env))

    def path(name: str, default: Path) -> str:
        return str(Path(env.get(name) or default).resolve())

    kb_folders = [f for f in (env.get("MNC_KB_FOLDERS") or "").split(os.pathsep) if f]
    model_store = ModelStore(root=path("MNC_MODEL_STORE", layout.root / "models"))
    dataset_store = DatasetStore(
        landing=path("MNC_LANDING", layout.root / "landing"),
        accepted=path("MNC_ACCEPTED", layout.root / "datasets"),
    )
    return {
        "artifacts": ArtifactStore(
            root=str(layout.root), model_store=model_store, dataset_store=dataset_store
        ),
        "model_store": model_store,
        "dataset_store": dataset_store,
        "warehouse": Warehouse(database=path("MNC_WAREHOUSE", layout.warehouse_path())),
        "gpu": GpuResource(
            device=env.get("MNC_DEVICE", "auto"),
            dtype=env.get("MNC_DTYPE", "auto"),
            memory_fraction=float(env.get("MNC_GPU_MEMORY_FRACTION", "0") or 0),
        ),
        "clip": ClipSettings(
            model=env.get("MNC_CLIP_MODEL", "tiny-vit"),
            checkpoint=env.get("MNC_CLIP_CHECKPOINT") or None,
        ),
        "t2i": T2ISettings.from_profile(env.get("MNC_PROFILE", "paper")),
        "engine": EngineConfig(
            ranker=env.get("MNC_RANKER", "catboost-class"),
            seed=int(env.get("MNC_SEED", "0")),
            walks=_optional_int(env.get("MNC_WALKS")),
            iterations=_optional_int(env.get("MNC_ITERATIONS")),
            shortlist_target=probability_setting(env, SHORTLIST_TARGET_ENV,
                                                 DEFAULT_SHORTLIST_TARGET),
            stop_probability=probability_setting(env, STOP_PROBABILITY_ENV,
                                                 DEFAULT_STOP_PROBABILITY),
        ),
        "knowledge_imports": KnowledgeImports(folders=[str(Path(f).resolve()) for f in kb_folders]),
    }
