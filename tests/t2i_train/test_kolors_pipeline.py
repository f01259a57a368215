"""The tiny Kolors pipeline: diffusers' ChatGLM parts, a trained SentencePiece tokenizer,
Kolors' UNet conditioning, and loading checks for what ChatGLM's tokenizer needs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch

from mnc_core.t2i.lora_families import NoisedBatch, encode_captions, family_of, predict
from mnc_core.t2i.pipelines import PipelineDirError, check_pipeline_dir, load_pipeline
from mnc_core.t2i.synthetic_data import SYNTHETIC_FAMILIES, draw_synthetic_image
from mnc_core.t2i.zoo import CATALOG_DIR, ZooConfigError, load_zoo_configs
from mnc_core.t2i.zoo.denoiser_cost import pipeline_class

KOLORS_CATALOG = CATALOG_DIR / "kolors"


@pytest.fixture(scope="module")
def kolors(tiny_pipeline_dir):
    return load_pipeline(tiny_pipeline_dir("kolors"))


def _catalog_config(component: str, file_name: str = "config.json") -> dict:
    return json.loads((KOLORS_CATALOG / component / file_name).read_text())


def test_tiny_kolors_has_the_real_kolors_structure(kolors, tiny_pipeline_dir):
    from diffusers import KolorsPipeline
    from diffusers.pipelines.kolors import ChatGLMModel, ChatGLMTokenizer

    assert type(kolors) is KolorsPipeline
    assert isinstance(kolors.text_encoder, ChatGLMModel)
    assert isinstance(kolors.tokenizer, ChatGLMTokenizer)
    index = check_pipeline_dir(tiny_pipeline_dir("kolors"))
    assert index.components["tokenizer"] == ("kolors", "ChatGLMTokenizer")
    assert (tiny_pipeline_dir("kolors") / "tokenizer" / "tokenizer.model").is_file()

    unet, real_unet = kolors.unet.config, _catalog_config("unet")
    for key in ("encoder_hid_dim_type", "addition_embed_type", "in_channels"):
        assert unet[key] == real_unet[key], key
    assert unet.encoder_hid_dim == kolors.text_encoder.config.hidden_size
    real_scheduler = _catalog_config("scheduler", "scheduler_config.json")
    for key in ("num_train_timesteps", "beta_end", "prediction_type", "timestep_spacing"):
        assert kolors.scheduler.config[key] == real_scheduler[key], key
    # untrained norms are one, and no weight was left uninitialised (torch.empty)
    state = kolors.text_encoder.state_dict()
    norms = [name for name in state if name.endswith("layernorm.weight")]
    assert len(norms) == 2 * kolors.text_encoder.config.num_layers + 1  # + final norm
    for name, tensor in state.items():
        assert torch.isfinite(tensor).all(), name
    for name in norms:
        assert torch.equal(state[name], torch.ones_like(state[name])), name


def test_every_synthetic_caption_tokenizes_without_unknown_pieces(kolors):
    rng = np.random.default_rng(1)
    captions = [draw_synthetic_image(f, rng, 32)[1] for f in SYNTHETIC_FAMILIES for _ in range(8)]
    tokenizer = kolors.tokenizer
    encoded = tokenizer(captions, padding="max_length", max_length=64, truncation=True)
    unk = tokenizer.tokenizer.sp_model.unk_id()
    prefix = tokenizer.get_prefix_tokens()  # [gMASK] sop
    for caption, ids, mask in zip(
        captions, encoded["input_ids"], encoded["attention_mask"], strict=True
    ):
        real = [i for i, m in zip(ids, mask, strict=True) if m]
        assert real[: len(prefix)] == prefix
        assert unk not in real[len(prefix) :], caption
        assert tokenizer.decode(real[len(prefix) :]) == caption


def test_kolors_conditioning_uses_chatglm_states_and_time_ids(kolors):
    spec = family_of(kolors)
    assert spec.name == "kolors" and spec.time_ids and spec.lora_save_kwarg == "unet_lora_layers"
    text = encode_captions(spec, kolors, ["a red circle", "a blue square on a grey page"], 16)
    hidden = kolors.text_encoder.config.hidden_size
    assert text["prompt_embeds"].shape == (2, 16, hidden)
    assert text["pooled_prompt_embeds"].shape == (2, hidden)
    assert not torch.allclose(text["pooled_prompt_embeds"][0], text["pooled_prompt_embeds"][1])

    gen = torch.Generator().manual_seed(0)
    noisy = torch.randn(2, 4, 16, 16, generator=gen)
    batch = NoisedBatch(noisy, torch.tensor([10, 700]), noisy, torch.ones(2, 1, 1, 1))
    time_ids = torch.tensor([[32.0, 32, 0, 0, 32, 32]] * 2)
    other_ids = time_ids.clone()
    other_ids[:, :2] = 1024.0
    with torch.no_grad():
        pred = predict(spec, kolors.unet, batch, text, time_ids)
        pred_other_size = predict(spec, kolors.unet, batch, text, other_ids)
        swapped = {k: v.flip(0) for k, v in text.items()}
        pred_swapped_text = predict(spec, kolors.unet, batch, swapped, time_ids)
    assert pred.shape == noisy.shape
    assert not torch.allclose(pred, pred_other_size), "add_time_ids do not reach the UNet"
    assert not torch.allclose(pred, pred_swapped_text), "the text does not reach the UNet"


@pytest.fixture
def kolors_copy(tiny_pipeline_dir, tmp_path) -> Path:
    target = tmp_path / "kolors"
    shutil.copytree(tiny_pipeline_dir("kolors"), target)
    return target


def test_missing_sentencepiece_model_is_named(kolors_copy):
    tokenizer_dir = kolors_copy / "tokenizer"
    (tokenizer_dir / "tokenizer.model").unlink()
    with pytest.raises(PipelineDirError, match="tokenizer folder .* has none of"):
        load_pipeline(kolors_copy)
    (tokenizer_dir / "vocab.json").write_text("{}")  # some vocabulary, but not ChatGLM's
    with pytest.raises(PipelineDirError, match=r"lacks \['tokenizer.model'\].*ChatGLMTokenizer"):
        load_pipeline(kolors_copy)


@pytest.mark.parametrize("library", ["kolors_from_elsewhere", "os.path", "../kolors"])
def test_only_installed_diffusers_pipeline_modules_are_trusted(kolors_copy, library):
    index_path = kolors_copy / "model_index.json"
    index = json.loads(index_path.read_text())
    index["text_encoder"] = [library, "ChatGLMModel"]
    index_path.write_text(json.dumps(index))
    with pytest.raises(PipelineDirError, match="no remote code"):
        load_pipeline(kolors_copy)


def test_zoo_resolves_the_real_kolors_pipeline_and_refuses_placeholders():
    from diffusers.pipelines.kolors.pipeline_kolors import KolorsPipeline
    from diffusers.utils import DummyObject

    model = load_zoo_configs(KOLORS_CATALOG)
    assert pipeline_class(model) is KolorsPipeline
    placeholder = "OnnxStableDiffusionPipeline"
    if not isinstance(getattr(diffusers, placeholder), DummyObject):
        pytest.skip(f"onnx is installed, so diffusers' {placeholder} is no placeholder here")
    with pytest.raises(ZooConfigError, match=f"{placeholder}' needs .*onnx"):
        pipeline_class(dataclasses.replace(model, pipeline_class=placeholder))
