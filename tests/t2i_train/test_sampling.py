"""Sampling validation captions with and without the LoRA, and scoring them with CLIP-FID."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from mnc_core.paths import DataLayout
from mnc_core.t2i.clip_embed import tiny_clip
from mnc_core.t2i.datasets import METADATA_FILE
from mnc_core.t2i.lora_families import LORA_WEIGHTS_FILE
from mnc_core.t2i.lora_training import LoraTrainConfig, train_lora
from mnc_core.t2i.sampling import (
    SamplesMismatchError,
    SamplingConfig,
    generate_images,
    load_lora_pipeline,
    sample_validation,
    score_samples,
)

DATASET_ID = "shapes"
SAMPLE_CONFIG = SamplingConfig(num_inference_steps=2, batch_size=2, resolution=32, seed=11)
FAMILIES = [
    pytest.param("sd15"),
    pytest.param("pixart"),  # no diffusers LoRA loader: the peft-injection path
    *[
        pytest.param(f, marks=pytest.mark.slow)
        for f in ("flux", "sdxl", "sd3", "sana", "sd2-v", "kolors")
    ],
]


def pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def clip():
    return tiny_clip(seed=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_and_base_samples_are_saved_and_scored(
    family, tiny_pipeline_dir, tiny_dataset, train_layout, clip
):
    tiny_pipeline_dir(family)
    config = LoraTrainConfig(
        max_steps=2, batch_size=2, learning_rate=2e-2, rank=4, resolution=32,
        checkpoint_every=10, max_sequence_length=16,
    )  # fmt: skip
    trained = train_lora(
        train_layout.model_dir(family), tiny_dataset, train_layout.lora_dir(family, DATASET_ID),
        config, cache_dir=train_layout.cache_dir(family, DATASET_ID),
    )  # fmt: skip
    lora = sample_validation(train_layout, family, DATASET_ID, tiny_dataset, "lora",
                             SAMPLE_CONFIG, lora_dir=trained.lora_dir)  # fmt: skip
    base = sample_validation(train_layout, family, DATASET_ID, tiny_dataset, "base", SAMPLE_CONFIG)

    captions = [p.caption for p in tiny_dataset.val]
    assert len(lora) == len(base) == len(captions)
    assert all(p.parent == train_layout.samples_dir(family, DATASET_ID, "lora") for p in lora)
    assert Image.open(lora[0]).size == (32, 32)
    rows = (lora[0].parent / METADATA_FILE).read_text().splitlines()
    assert [json.loads(r)["text"] for r in rows] == captions
    differs = [not np.array_equal(pixels(a), pixels(b)) for a, b in zip(lora, base, strict=True)]
    assert any(differs), "the LoRA had no effect on the generated images"

    references = [p.path for p in tiny_dataset.val]
    fid_lora = score_samples(clip, lora, references)
    assert math.isfinite(fid_lora) and fid_lora >= 0
    assert score_samples(clip, references, references) < 1e-6 < fid_lora


def test_samples_are_seeded_per_image_and_not_regenerated(tiny_pipeline_dir, tmp_path):
    pipe = load_lora_pipeline(tiny_pipeline_dir("sd15"), None)
    captions = ["a red circle", "a blue square", "a green triangle"]
    first = generate_images(pipe, captions, tmp_path / "a", SAMPLE_CONFIG)
    regrouped = SamplingConfig(num_inference_steps=2, batch_size=1, resolution=32, seed=11)
    second = generate_images(pipe, captions, tmp_path / "b", regrouped)
    for a, b in zip(first, second, strict=True):
        # same seed per image: equal up to float rounding of batched kernels (1 grey level)
        assert np.abs(pixels(a) - pixels(b)).max() <= 1, "image depends on batch grouping"
    assert np.abs(pixels(first[0]) - pixels(first[1])).mean() > 5, "seeds do not vary"
    stamps = [p.stat().st_mtime_ns for p in first]
    first[1].unlink()
    again = generate_images(pipe, captions, tmp_path / "a", SAMPLE_CONFIG)
    assert [again[0].stat().st_mtime_ns, again[2].stat().st_mtime_ns] == [stamps[0], stamps[2]]
    assert np.abs(pixels(again[1]) - pixels(second[1])).max() <= 1


def test_samples_from_another_source_are_refused_not_overwritten(tiny_pipeline_dir, tmp_path):
    pipe = load_lora_pipeline(tiny_pipeline_dir("sd15"), None)
    out = tmp_path / "s"
    first = generate_images(pipe, ["a red circle"], out, SAMPLE_CONFIG, source="lora:aaa")
    stamp = first[0].stat().st_mtime_ns
    with pytest.raises(SamplesMismatchError, match="another LoRA"):
        generate_images(pipe, ["a red circle"], out, SAMPLE_CONFIG, source="lora:bbb")
    other_seed = SamplingConfig(num_inference_steps=2, batch_size=1, resolution=32, seed=99)
    with pytest.raises(SamplesMismatchError):
        generate_images(pipe, ["a red circle"], out, other_seed, source="lora:aaa")
    assert first[0].stat().st_mtime_ns == stamp
    unknown = tmp_path / "legacy"
    unknown.mkdir()
    (unknown / "00000.png").write_bytes(first[0].read_bytes())
    with pytest.raises(SamplesMismatchError, match="origin is unknown"):
        generate_images(pipe, ["a red circle"], unknown, SAMPLE_CONFIG)


def test_bad_sampling_requests_fail_clearly(
    tiny_pipeline_dir, tiny_dataset, train_layout, tmp_path
):
    tiny_pipeline_dir("sd15")
    with pytest.raises(ValueError, match="needs lora_dir"):
        sample_validation(train_layout, "sd15", DATASET_ID, tiny_dataset, "lora", SAMPLE_CONFIG)
    with pytest.raises(ValueError, match="do not pass lora_dir"):
        sample_validation(train_layout, "sd15", DATASET_ID, tiny_dataset, "base", SAMPLE_CONFIG,
                          lora_dir=tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="not one of"):
        sample_validation(train_layout, "sd15", DATASET_ID, tiny_dataset, "finetuned")
    empty = tmp_path / "empty_lora"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=LORA_WEIGHTS_FILE):
        load_lora_pipeline(tiny_pipeline_dir("sd15"), empty)
    shutil.rmtree(empty)


def test_changed_captions_are_refused_and_extra_ones_drawn(tiny_pipeline_dir, tmp_path, snapshot):
    pipe = load_lora_pipeline(tiny_pipeline_dir("sd15"), None)
    out = tmp_path / "s"
    first = generate_images(pipe, ["a red circle", "a blue square"], out, SAMPLE_CONFIG)
    before = snapshot(out)
    with pytest.raises(SamplesMismatchError, match=r"00001\.png was drawn for 'a blue square'"):
        generate_images(pipe, ["a red circle", "a green star"], out, SAMPLE_CONFIG)
    assert snapshot(out) == before
    stamps = [p.stat().st_mtime_ns for p in first]
    grown = generate_images(pipe, ["a red circle", "a blue square", "a pink moon"], out,
                            SAMPLE_CONFIG)  # fmt: skip
    assert [p.stat().st_mtime_ns for p in grown[:2]] == stamps and grown[2].is_file()
    generate_images(pipe, ["a red circle"], out, SAMPLE_CONFIG)  # a smaller max_images
    with pytest.raises(SamplesMismatchError, match=r"00002\.png was drawn for 'a pink moon'"):
        generate_images(pipe, ["a red circle", "a blue square", "a grey cube"], out,
                        SAMPLE_CONFIG)  # fmt: skip


def test_samples_recorded_without_captions_are_refused(tiny_pipeline_dir, tmp_path):
    pipe = load_lora_pipeline(tiny_pipeline_dir("sd15"), None)
    out = tmp_path / "s"
    generate_images(pipe, ["a red circle"], out, SAMPLE_CONFIG)
    stamp = out / "samples.json"
    legacy = {"fingerprint": json.loads(stamp.read_text())["fingerprint"]}
    stamp.write_text(json.dumps(legacy) + "\n")
    png = (out / "00000.png").read_bytes()
    with pytest.raises(SamplesMismatchError, match=r"00000\.png.*does not record the captions"):
        generate_images(pipe, ["a red circle"], out, SAMPLE_CONFIG)
    assert (out / "00000.png").read_bytes() == png
    assert json.loads(stamp.read_text()) == legacy


def test_base_samples_are_refused_after_the_pipeline_weights_change(
    tiny_pipeline_dir, tiny_dataset, tmp_path
):
    layout = DataLayout(tmp_path / "root")
    model_dir = layout.model_dir("sd15")
    shutil.copytree(tiny_pipeline_dir("sd15"), model_dir)
    config = SamplingConfig(num_inference_steps=2, batch_size=1, resolution=32, seed=11,
                            max_images=1)  # fmt: skip
    first = sample_validation(layout, "sd15", DATASET_ID, tiny_dataset, "base", config)
    png = first[0].read_bytes()
    weights = next(model_dir.glob("unet/*.safetensors"))
    tensors = load_file(str(weights))
    save_file({k: v * 0.5 for k, v in tensors.items()}, str(weights))
    with pytest.raises(SamplesMismatchError, match="another LoRA/pipeline"):
        sample_validation(layout, "sd15", DATASET_ID, tiny_dataset, "base", config)
    assert first[0].read_bytes() == png


def test_score_samples_names_a_truncated_image(clip, tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 32), "red").save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:60])
    with pytest.raises(OSError, match=rf"{bad}: cannot read image"):
        score_samples(clip, [good, bad], [good])
