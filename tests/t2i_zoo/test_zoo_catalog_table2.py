"""The shipped catalog against the paper's Table 2 (tolerances documented in CATALOG.md)."""

from __future__ import annotations

import pytest

from mnc_core.t2i.zoo import CATALOG_DIR, CATALOG_MODEL_IDS, load_zoo_configs
from mnc_core.t2i.zoo.denoiser_cost import build_meta_denoiser, count_params, denoiser_cost
from mnc_core.t2i.zoo.paper_table2 import PAPER_TABLE2, PARAMS_TOLERANCE

# TFLOPs: Table 2 matches our count at 512 px (the paper's crop size) within this
# ratio band for every model but Sana 4.8B, which matches at its 1024 px default.
TFLOPS_BAND = (0.85, 1.15)
TFLOPS_AT_DEFAULT_RESOLUTION = {"sana-4.8b"}


def test_table2_covers_the_catalog() -> None:
    assert set(PAPER_TABLE2) == set(CATALOG_MODEL_IDS)


@pytest.mark.parametrize("model_id", CATALOG_MODEL_IDS)
def test_denoiser_params_match_table2(model_id: str) -> None:
    model = load_zoo_configs(CATALOG_DIR / model_id)
    params, _ = count_params(build_meta_denoiser(model.denoiser))
    paper = PAPER_TABLE2[model_id].params_g * 1e9
    assert abs(params - paper) / paper <= PARAMS_TOLERANCE, (model_id, params / 1e9)


def test_sd35_medium_gap_is_the_positional_table() -> None:
    """Without the 384x384x1536 pos_embed buffer SD3.5 medium has 2.24 G (9 % under 2.47)."""
    model = load_zoo_configs(CATALOG_DIR / "sd35-medium")
    state, trainable = count_params(build_meta_denoiser(model.denoiser))
    assert state - trainable == 384 * 384 * 24 * 64
    assert abs(trainable / 2.47e9 - 1) > PARAMS_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("model_id", CATALOG_MODEL_IDS)
def test_tflops_ratio_to_table2(model_id: str) -> None:
    model = load_zoo_configs(CATALOG_DIR / model_id)
    resolution = None if model_id in TFLOPS_AT_DEFAULT_RESOLUTION else 512
    ratio = denoiser_cost(model, resolution).tflops_per_image / PAPER_TABLE2[model_id].tflops
    assert TFLOPS_BAND[0] <= ratio <= TFLOPS_BAND[1], (model_id, ratio)
