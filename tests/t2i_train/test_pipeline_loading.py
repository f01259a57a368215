"""Incomplete pipeline directories fail with an error naming what is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mnc_core.t2i.pipelines import PipelineDirError, check_pipeline_dir, load_pipeline
from mnc_core.t2i.tiny_pipelines import build_tiny_pipeline


@pytest.fixture
def sd15_copy(tiny_pipeline_dir, tmp_path) -> Path:
    target = tmp_path / "sd15"
    shutil.copytree(tiny_pipeline_dir("sd15"), target)
    return target


def test_complete_tiny_pipeline_loads_with_its_components(sd15_copy):
    pipe = load_pipeline(sd15_copy, device="cpu", dtype=torch.float32)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.unet.dtype == torch.float32
    assert check_pipeline_dir(sd15_copy).components["unet"] == ("diffusers", "UNet2DConditionModel")


def test_missing_directory(tmp_path):
    with pytest.raises(PipelineDirError, match="does not exist"):
        load_pipeline(tmp_path / "nope")


def test_missing_model_index(sd15_copy):
    (sd15_copy / "model_index.json").unlink()
    with pytest.raises(PipelineDirError, match="model_index.json is missing"):
        load_pipeline(sd15_copy)


def test_corrupt_model_index(sd15_copy):
    (sd15_copy / "model_index.json").write_text("{not json")
    with pytest.raises(PipelineDirError, match="model_index.json is not valid JSON"):
        load_pipeline(sd15_copy)


def test_missing_component_folder(sd15_copy):
    shutil.rmtree(sd15_copy / "vae")
    with pytest.raises(PipelineDirError, match=r"component folder .*vae is missing"):
        load_pipeline(sd15_copy)


def test_missing_weights(sd15_copy):
    for weights in (sd15_copy / "unet").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(PipelineDirError, match=r"unet has no \.safetensors weights"):
        load_pipeline(sd15_copy)


def test_missing_component_config(sd15_copy):
    (sd15_copy / "text_encoder" / "config.json").unlink()
    with pytest.raises(PipelineDirError, match=r"text_encoder.config\.json is missing"):
        load_pipeline(sd15_copy)


def test_tokenizer_without_vocabulary(sd15_copy):
    for f in (sd15_copy / "tokenizer").iterdir():
        if f.name != "tokenizer_config.json":
            f.unlink()
    with pytest.raises(PipelineDirError, match="tokenizer folder .* has none of"):
        load_pipeline(sd15_copy)


def test_component_from_untrusted_library_is_refused(sd15_copy):
    index_path = sd15_copy / "model_index.json"
    index = json.loads(index_path.read_text())
    index["unet"] = ["my_remote_module", "MyUNet"]
    index_path.write_text(json.dumps(index))
    with pytest.raises(PipelineDirError, match="no remote code"):
        load_pipeline(sd15_copy)


def test_unknown_family_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown family 'dalle'"):
        build_tiny_pipeline("dalle", tmp_path / "d")
    assert not (tmp_path / "d").exists()
