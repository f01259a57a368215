"""The model zoo: the paper's ten pipelines as shipped configs, and config parsing.

`catalog/<model-id>/` holds component configs only (no weights) of each
pipeline, laid out like a diffusers pipeline directory; `CATALOG.md` says where
each file comes from (copied or derived).
"""

from __future__ import annotations

from pathlib import Path

from mnc_core.t2i.zoo.configs import (
    ComponentConfig,
    ZooConfigError,
    ZooModel,
    load_zoo_configs,
)

CATALOG_DIR = Path(__file__).parent / "catalog"
# The paper's ten pipelines (Table 2), in the order of that table's rows.
CATALOG_MODEL_IDS = (
    "flux1-dev",
    "juggernaut-x",
    "kolors",
    "pixart-sigma",
    "sana-1.6b",
    "sd15",
    "sd35-medium",
    "sdxl",
    "segmind-vega",
    "sana-4.8b",
)


def catalog_model_dirs() -> list[Path]:
    """Directories of the shipped catalog, one per model id."""
    return [CATALOG_DIR / model_id for model_id in CATALOG_MODEL_IDS]


def load_catalog() -> list[ZooModel]:
    """Parse every catalog model's configs."""
    return [load_zoo_configs(path) for path in catalog_model_dirs()]


__all__ = [
    "CATALOG_DIR",
    "CATALOG_MODEL_IDS",
    "ComponentConfig",
    "ZooConfigError",
    "ZooModel",
    "catalog_model_dirs",
    "load_catalog",
    "load_zoo_configs",
]
