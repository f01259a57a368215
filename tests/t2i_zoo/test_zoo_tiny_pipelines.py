"""Features of saved tiny pipelines of every family, checked against their weight files."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from mnc_core.t2i.model_features import compute_model_features
from mnc_core.t2i.tiny_pipelines import TINY_FAMILIES, build_tiny_pipeline
from mnc_core.t2i.zoo import CATALOG_DIR, load_zoo_configs
from mnc_core.t2i.zoo.denoiser_cost import denoiser_cost


def _stored_elements(component_dir: Path) -> int:
    """Elements of every tensor in the component's safetensors files (shapes only)."""
    total = 0
    for path in component_dir.glob("*.safetensors"):
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                total += int(np.prod(handle.get_slice(key).get_shape()))
    return total


@pytest.fixture(scope="module")
def tiny_pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-pipelines")
    return {family: build_tiny_pipeline(family, root / family) for family in TINY_FAMILIES}


def test_params_equal_the_saved_weights(tiny_pipelines: dict[str, Path]) -> None:
    features = compute_model_features(list(tiny_pipelines.values()))
    assert list(features.table.index) == list(TINY_FAMILIES)
    assert not features.table.isna().any().any()
    for family, path in tiny_pipelines.items():
        denoiser = path / ("unet" if (path / "unet").is_dir() else "transformer")
        assert features.params[family] == _stored_elements(denoiser), family
        assert features.tflops[family] > 0


def test_flux_12b_is_counted_without_allocating_it() -> None:
    """11.9 G parameters in fp32 would be 48 GB; counting must stay far below 1 GB."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    cost = denoiser_cost(load_zoo_configs(CATALOG_DIR / "flux1-dev"))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert cost.params > 11e9
    assert grown_kib < 1024 * 1024
