"""Parsing pipeline directories, the catalog, and the errors for missing or broken files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mnc_core.ids import InvalidIdError
from mnc_core.t2i.zoo import (
    CATALOG_DIR,
    CATALOG_MODEL_IDS,
    ZooConfigError,
    load_catalog,
    load_zoo_configs,
)


def test_tiny_pipeline_is_parsed(tiny_zoo: dict[str, Path]) -> None:
    model = load_zoo_configs(tiny_zoo["tiny-xl"])
    assert model.model_id == "tiny-xl"
    assert model.pipeline_class == "StableDiffusionXLPipeline"
    assert model.denoiser.name == "unet"
    assert model.denoiser.config["cross_attention_dim"] == 64
    assert [te.name for te in model.text_encoders] == ["text_encoder", "text_encoder_2"]
    assert model.scheduler.class_name == "EulerDiscreteScheduler"
    assert model.vae.path == tiny_zoo["tiny-xl"] / "vae" / "config.json"


def test_optional_and_non_config_components(tiny_zoo: dict[str, Path]) -> None:
    model = load_zoo_configs(tiny_zoo["tiny-sd"])
    # the tokenizer is listed but not parsed; the [null, null] safety checker is skipped
    assert model.other_components == ("tokenizer",)
    assert "safety_checker" not in model.components
    assert set(model.components) == {"unet", "vae", "text_encoder", "scheduler"}


def test_catalog_has_the_papers_ten_pipelines() -> None:
    assert sorted(p.name for p in CATALOG_DIR.iterdir() if p.is_dir()) == sorted(
        CATALOG_MODEL_IDS
    )
    models = {m.model_id: m for m in load_catalog()}
    assert len(models) == 10
    denoisers = {mid: m.denoiser.class_name for mid, m in models.items()}
    assert denoisers["flux1-dev"] == "FluxTransformer2DModel"
    assert denoisers["pixart-sigma"] == "Transformer2DModel"
    assert denoisers["sd35-medium"] == "SD3Transformer2DModel"
    assert denoisers["sana-4.8b"] == "SanaTransformer2DModel"
    unets = {mid for mid, cls in denoisers.items() if cls == "UNet2DConditionModel"}
    assert unets == {"sd15", "sdxl", "juggernaut-x", "segmind-vega", "kolors"}
    # Vega is not SDXL's UNet: fewer transformer layers and a mid block without attention
    vega = models["segmind-vega"].denoiser.config
    assert vega["transformer_layers_per_block"] == [0, 1, 2]
    assert vega["mid_block_type"] == "UNetMidBlock2D"
    # Sana's scheduler file writes -Infinity, which is parsed, not rejected
    assert models["sana-1.6b"].scheduler.config["lambda_min_clipped"] == float("-inf")


def _copy(tiny_zoo: dict[str, Path], tmp_path: Path, name: str = "tiny-sd") -> Path:
    target = tmp_path / name
    shutil.copytree(tiny_zoo["tiny-sd"], target)
    return target


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ZooConfigError, match="not a directory"):
        load_zoo_configs(tmp_path / "nope")


def test_missing_model_index_names_the_file(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    model_dir = _copy(tiny_zoo, tmp_path)
    (model_dir / "model_index.json").unlink()
    with pytest.raises(ZooConfigError, match=r"model_index\.json: missing"):
        load_zoo_configs(model_dir)


def test_missing_component_config_names_file_and_component(
    tiny_zoo: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = _copy(tiny_zoo, tmp_path)
    shutil.rmtree(model_dir / "vae")
    with pytest.raises(ZooConfigError) as err:
        load_zoo_configs(model_dir)
    message = str(err.value)
    assert str(model_dir / "vae" / "config.json") in message
    assert "component 'vae'" in message and "AutoencoderKL" in message


def test_scheduler_config_file_name(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    model_dir = _copy(tiny_zoo, tmp_path)
    (model_dir / "scheduler" / "scheduler_config.json").rename(
        model_dir / "scheduler" / "config.json"
    )
    with pytest.raises(ZooConfigError, match=r"scheduler_config\.json: missing"):
        load_zoo_configs(model_dir)


def test_invalid_json_names_the_file(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    model_dir = _copy(tiny_zoo, tmp_path)
    (model_dir / "unet" / "config.json").write_text("{not json")
    with pytest.raises(ZooConfigError, match=r"unet/config\.json: not valid JSON"):
        load_zoo_configs(model_dir)


def test_pipeline_without_denoiser(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    model_dir = _copy(tiny_zoo, tmp_path)
    index = json.loads((model_dir / "model_index.json").read_text())
    del index["unet"]
    (model_dir / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ZooConfigError, match="no denoiser"):
        load_zoo_configs(model_dir)


def test_pipeline_without_scheduler(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    model_dir = _copy(tiny_zoo, tmp_path)
    index = json.loads((model_dir / "model_index.json").read_text())
    del index["scheduler"]
    (model_dir / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ZooConfigError, match="lists no 'scheduler'"):
        load_zoo_configs(model_dir)


def test_directory_name_must_be_a_slug(tiny_zoo: dict[str, Path], tmp_path: Path) -> None:
    model_dir = _copy(tiny_zoo, tmp_path, name="Tiny|SD")
    with pytest.raises(InvalidIdError, match="Tiny"):
        load_zoo_configs(model_dir)
    assert load_zoo_configs(model_dir, model_id="tiny-sd-2").model_id == "tiny-sd-2"
