"""Feature encoding rules on hand-made values, and the feature table of the tiny zoo."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnc_core.t2i.model_features import (
    compute_model_features,
    encode_features,
    flatten_config,
    model_feature_table,
)
from mnc_core.t2i.zoo import load_zoo_configs
from mnc_core.t2i.zoo.denoiser_cost import denoiser_cost

Z = math.sqrt(1.5)  # z-score of the extremes of three evenly spaced values


def test_flatten_expands_lists_by_position_and_drops_metadata() -> None:
    flat = flatten_config(
        "unet",
        {
            "_class_name": "UNet2DConditionModel",
            "_diffusers_version": "0.1",
            "torch_dtype": "float16",
            "block_out_channels": [320, 640, 1280],
            "qkv": [[], [5]],
            "rope": {"theta": 10.0},
            "sample_size": 64,
        },
    )
    assert flat == {
        "unet_block_out_channels_0": 320,
        "unet_block_out_channels_1": 640,
        "unet_block_out_channels_2": 1280,
        "unet_qkv_1_0": 5,
        "unet_rope_theta": 10.0,
        "unet_sample_size": 64,
    }


def _hand_made_raw() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = {
        "a": {"layers": 2, "width": 1, "flag": True, "kind": "unet", "same": 5, "only_a": 7,
              "only_a2": 9, "nullable": None, "style": None},
        "b": {"layers": 4, "width": 10, "flag": False, "kind": "dit", "same": 5,
              "nullable": 3, "style": "x"},
        "c": {"layers": 6, "width": 100, "flag": True, "kind": "unet", "same": 5,
              "nullable": 5, "style": "x"},
    }
    columns = list(dict.fromkeys(k for row in rows.values() for k in row))
    raw = pd.DataFrame(
        {c: pd.Series([rows[m].get(c) for m in rows], index=list(rows), dtype=object)
         for c in columns}
    )
    present = pd.DataFrame({c: [c in rows[m] for m in rows] for c in columns}, index=list(rows))
    return raw, present


def test_encoding_rules_on_hand_computed_values() -> None:
    raw, present = _hand_made_raw()
    table = encode_features(raw, present)
    expected = pd.DataFrame(
        {
            "layers": [-Z, 0.0, Z],  # standardised
            "width": [-Z, 0.0, Z],  # log10 (1, 10, 100 span >= 10x) then standardised
            "flag": [1.0, 0.0, 1.0],  # bools stay 0/1
            "kind_dit": [0.0, 1.0, 0.0],  # one-hot
            "kind_unet": [1.0, 0.0, 1.0],
            # "same" is constant: dropped. "only_a" alone is constant: only its indicator stays
            "only_a_missing": [0.0, 1.0, 1.0],
            # "only_a2_missing" copies "only_a_missing": dropped
            "nullable": [0.0, -1.0, 1.0],  # explicit null = missing
            "nullable_missing": [1.0, 0.0, 0.0],
            "style_None": [1.0, 0.0, 0.0],  # explicit null is a category
            "style_x": [0.0, 1.0, 1.0],
        },
        index=["a", "b", "c"],
    )
    pd.testing.assert_frame_equal(table.sort_index(axis=1), expected.sort_index(axis=1))


def test_feature_table_of_the_tiny_zoo(tiny_zoo: dict[str, Path]) -> None:
    dirs = [tiny_zoo["tiny-sd"], tiny_zoo["tiny-xl"], tiny_zoo["tiny-sd3"]]
    features = compute_model_features(dirs)
    table = features.table
    assert list(table.index) == ["tiny-sd", "tiny-xl", "tiny-sd3"]
    assert all(pd.api.types.is_float_dtype(t) for t in table.dtypes)
    assert not table.isna().any().any()
    assert np.isfinite(table.to_numpy()).all()

    # one-hot: exactly one pipeline class per model, each its own
    classes = table.filter(like="pipeline_class_")
    assert classes.sum(axis=1).tolist() == [1.0, 1.0, 1.0]
    assert table.loc["tiny-sd3", "pipeline_class_StableDiffusion3Pipeline"] == 1.0
    assert table.loc["tiny-sd", "scheduler_class_PNDMScheduler"] == 1.0
    assert table.loc["tiny-xl", "scheduler_class_PNDMScheduler"] == 0.0

    # numbers: cross_attention_dim 32 / 64 standardised; the SD3 model has no UNet key
    assert table["unet_cross_attention_dim"].tolist() == pytest.approx([-1.0, 1.0, 0.0])
    # "no UNet" is said once, by the first UNet key's indicator (sample_size comes first)
    assert table["unet_sample_size_missing"].tolist() == [0.0, 0.0, 1.0]
    assert "unet_cross_attention_dim_missing" not in table
    # a list key only the XL UNet has: one indicator kept, its copies (position 1) dropped
    assert table["unet_transformer_layers_per_block_0_missing"].tolist() == [1.0, 0.0, 1.0]
    assert "unet_transformer_layers_per_block_1_missing" not in table
    # the same value wherever present (in_channels 4, latent_channels 4): no value column
    assert "vae_latent_channels" not in table
    assert "unet_in_channels" not in table

    # raw params/tflops come from the denoiser counts
    for model_id, path in zip(features.table.index, dirs, strict=True):
        cost = denoiser_cost(load_zoo_configs(path))
        assert features.params[model_id] == cost.params
        assert features.tflops[model_id] == pytest.approx(cost.tflops_per_image)
    # and enter the table log-standardised (they span more than 10x)
    logs = np.log10(features.params.astype(float))
    assert table["params"].tolist() == pytest.approx((logs - logs.mean()) / logs.std(ddof=0))

    pd.testing.assert_frame_equal(model_feature_table(dirs), table)


def test_duplicate_model_ids_are_refused(tiny_zoo: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="appear twice"):
        compute_model_features([tiny_zoo["tiny-sd"], tiny_zoo["tiny-sd"]])


def test_cost_cache_is_reused_and_keyed_by_content(
    tiny_zoo: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = compute_model_features([tiny_zoo["tiny-sd"], tiny_zoo["tiny-xl"]], cache_dir=cache)
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 2
    again = compute_model_features([tiny_zoo["tiny-sd"], tiny_zoo["tiny-xl"]], cache_dir=cache)
    pd.testing.assert_series_equal(first.params, again.params)
    assert again.costs == first.costs
    # a corrupt entry is recounted, not trusted
    entries[0].write_text("{broken")
    third = compute_model_features([tiny_zoo["tiny-sd"], tiny_zoo["tiny-xl"]], cache_dir=cache)
    assert third.costs == first.costs
