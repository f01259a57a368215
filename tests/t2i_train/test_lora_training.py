"""LoRA fine-tuning of every tiny family: train, checkpoint, resume exactly, reuse the cache."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mnc_core.t2i.datasets import load_imagefolder
from mnc_core.t2i.lora_families import LORA_WEIGHTS_FILE
from mnc_core.t2i.lora_training import (
    FINAL_DIR,
    LoraTrainConfig,
    batch_indices,
    train_lora,
)
from mnc_core.t2i.training_cache import CACHE_FINGERPRINT_FILE

FAST_FAMILIES = ("sd15", "flux")
SLOW_FAMILIES = ("sdxl", "sd3", "sana", "pixart", "sd2-v", "kolors")
ALL_FAMILIES = [pytest.param(f) for f in FAST_FAMILIES] + [
    pytest.param(f, marks=pytest.mark.slow) for f in SLOW_FAMILIES
]


def tiny_config(**overrides) -> LoraTrainConfig:
    base = dict(
        max_steps=4, batch_size=2, learning_rate=1e-3, rank=4, resolution=32,
        checkpoint_every=2, max_sequence_length=16, seed=3,
    )  # fmt: skip
    base.update(overrides)
    return LoraTrainConfig(**base)


class Interrupted(Exception):
    """Raised from the progress callback to simulate a killed run."""


def interrupt_at(step_to_fail: int):
    def callback(step: int, loss: float) -> None:
        if step == step_to_fail:
            raise Interrupted(step)

    return callback


def final_weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out_dir / FINAL_DIR / LORA_WEIGHTS_FILE))


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_train_interrupt_resume_gives_identical_lora(
    family, tiny_pipeline_dir, tiny_dataset, tmp_path
):
    pipeline = tiny_pipeline_dir(family)
    config = tiny_config()
    cache = tmp_path / "cache"

    straight = train_lora(pipeline, tiny_dataset, tmp_path / "a", config, cache_dir=cache)
    assert straight.steps == 4 and len(straight.losses) == 4
    assert all(torch.isfinite(torch.tensor(straight.losses)))
    weights_a = final_weights(tmp_path / "a")
    lora_b = [v for k, v in weights_a.items() if "lora_B" in k or "lora.up" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b), "training did not move LoRA B"

    with pytest.raises(Interrupted):
        train_lora(pipeline, tiny_dataset, tmp_path / "b", config, progress=interrupt_at(3),
                   cache_dir=cache)  # fmt: skip
    assert (tmp_path / "b" / "checkpoint-000002").is_dir()
    assert not (tmp_path / "b" / FINAL_DIR).exists()
    resumed = train_lora(pipeline, tiny_dataset, tmp_path / "b", config, cache_dir=cache)
    assert resumed.resumed_from == 2
    assert resumed.losses == straight.losses

    weights_b = final_weights(tmp_path / "b")
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key


def test_cache_is_built_once_and_rebuilt_when_the_data_changes(
    tiny_pipeline_dir, tiny_dataset, tmp_path, monkeypatch
):
    from mnc_core.t2i import training_cache

    calls = []
    original = training_cache._encode_shard
    monkeypatch.setattr(
        training_cache, "_encode_shard", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    pipeline = tiny_pipeline_dir("sd15")
    config = tiny_config(max_steps=1)
    train_lora(pipeline, tiny_dataset, tmp_path / "a", config, cache_dir=tmp_path / "c")
    assert len(calls) == 1
    train_lora(pipeline, tiny_dataset, tmp_path / "b", config, cache_dir=tmp_path / "c")
    assert len(calls) == 1, "unchanged cache was re-encoded"
    train_lora(pipeline, tiny_dataset, tmp_path / "r64", tiny_config(max_steps=1, resolution=64),
               cache_dir=tmp_path / "c")  # fmt: skip
    assert len(calls) == 2, "a different resolution must re-encode"
    meta = json.loads((tmp_path / "c" / CACHE_FINGERPRINT_FILE).read_text())
    assert meta["n_items"] == len(tiny_dataset.train)


def test_user_folder_or_dataset_as_cache_dir_is_refused_and_kept(
    tiny_pipeline_dir, tiny_dataset, tmp_path, snapshot, foreign_folder
):
    dataset_dir = tmp_path / "data"
    shutil.copytree(tiny_dataset.root, dataset_dir)
    dataset = load_imagefolder(dataset_dir)
    for folder in (foreign_folder, dataset_dir):
        before = snapshot(folder)
        with pytest.raises(ValueError, match=str(folder)):
            train_lora(tiny_pipeline_dir("sd15"), dataset, tmp_path / "run",
                       tiny_config(max_steps=1), cache_dir=folder)  # fmt: skip
        assert snapshot(folder) == before


def test_truncated_cache_shard_is_rebuilt(tiny_pipeline_dir, tiny_dataset, tmp_path):
    pipeline, cache = tiny_pipeline_dir("sd15"), tmp_path / "c"
    config = tiny_config(max_steps=1)
    first = train_lora(pipeline, tiny_dataset, tmp_path / "a", config, cache_dir=cache)
    _truncate(cache / "latents-00000.safetensors")
    again = train_lora(pipeline, tiny_dataset, tmp_path / "b", config, cache_dir=cache)
    assert again.losses == first.losses
    assert load_file(str(cache / "latents-00000.safetensors"))


def test_partial_checkpoint_folder_is_ignored_on_resume(tiny_pipeline_dir, tiny_dataset, tmp_path):
    out = tmp_path / "run"
    partial = out / ".checkpoint-000002.tmp-999"
    partial.mkdir(parents=True)
    (partial / "train_state.json").write_text("{broken")
    result = train_lora(tiny_pipeline_dir("sd15"), tiny_dataset, out, tiny_config(max_steps=2),
                        cache_dir=tmp_path / "c")  # fmt: skip
    assert result.resumed_from == 0 and result.steps == 2


def test_finished_run_is_not_retrained_or_overwritten(tiny_pipeline_dir, tiny_dataset, tmp_path):
    pipeline = tiny_pipeline_dir("sd15")
    out = tmp_path / "run"
    first = train_lora(pipeline, tiny_dataset, out, tiny_config(max_steps=2),
                       cache_dir=tmp_path / "c")  # fmt: skip
    weights_file = out / FINAL_DIR / LORA_WEIGHTS_FILE
    stamp = weights_file.stat().st_mtime_ns
    again = train_lora(pipeline, tiny_dataset, out, tiny_config(max_steps=2),
                       cache_dir=tmp_path / "c")  # fmt: skip
    assert again.losses == first.losses
    assert weights_file.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="different config"):
        train_lora(pipeline, tiny_dataset, out, tiny_config(max_steps=2, learning_rate=5e-4),
                   cache_dir=tmp_path / "c")  # fmt: skip
    assert weights_file.stat().st_mtime_ns == stamp


def test_changed_training_data_is_refused_on_reuse_and_resume(
    tiny_pipeline_dir, tiny_dataset, tmp_path
):
    """A finished run or a checkpoint trained on other pairs is never returned as if it
    were trained on these, nor resumed with them (which would mix two datasets)."""
    pipeline = tiny_pipeline_dir("sd15")
    first, *rest = tiny_dataset.train
    changed = dataclasses.replace(
        tiny_dataset, train=[dataclasses.replace(first, caption=first.caption + " now"), *rest]
    )
    out = tmp_path / "run"
    train_lora(pipeline, tiny_dataset, out, tiny_config(max_steps=2), cache_dir=tmp_path / "c")
    weights = (out / FINAL_DIR / LORA_WEIGHTS_FILE).read_bytes()
    with pytest.raises(ValueError, match="trained on other data"):
        train_lora(pipeline, changed, out, tiny_config(max_steps=2), cache_dir=tmp_path / "c")
    assert (out / FINAL_DIR / LORA_WEIGHTS_FILE).read_bytes() == weights

    interrupted = tmp_path / "interrupted"
    with pytest.raises(Interrupted):
        train_lora(pipeline, tiny_dataset, interrupted, tiny_config(),
                   progress=interrupt_at(3), cache_dir=tmp_path / "c")  # fmt: skip
    with pytest.raises(ValueError, match="checkpoint-000002 was trained on other data"):
        train_lora(pipeline, changed, interrupted, tiny_config(), cache_dir=tmp_path / "c2")
    assert not (interrupted / FINAL_DIR).exists()


def test_batch_order_is_a_function_of_seed_and_step():
    n, bs = 7, 3
    steps = [batch_indices(5, s, bs, n) for s in range(1, 8)]
    flat = [i for batch in steps for i in batch]
    # every epoch (n consecutive draws) visits each row exactly once
    assert sorted(flat[:n]) == list(range(n))
    assert sorted(flat[n : 2 * n]) == list(range(n))
    assert batch_indices(5, 4, bs, n) == steps[3]
    assert flat[:n] != [i for s in range(1, 4) for i in batch_indices(6, s, bs, n)][:n]


@pytest.mark.parametrize(
    "field", ["max_steps", "batch_size", "rank", "resolution", "checkpoint_every",
              "keep_checkpoints"],
)  # fmt: skip
@pytest.mark.parametrize("value", [0, -1])
def test_config_rejects_non_positive_sizes(field, value):
    with pytest.raises(ValueError, match=field):
        LoraTrainConfig(**{field: value})


def test_paper_defaults():
    config = LoraTrainConfig()
    assert (config.max_steps, config.batch_size, config.learning_rate) == (10_000, 8, 1e-5)
    assert config.resolution == 512


def test_checkpoint_holds_resume_state_and_old_ones_are_pruned(
    tiny_pipeline_dir, tiny_dataset, tmp_path
):
    out = tmp_path / "run"
    config = tiny_config(max_steps=4, checkpoint_every=1, keep_checkpoints=1)
    train_lora(tiny_pipeline_dir("sd15"), tiny_dataset, out, config, cache_dir=tmp_path / "c")
    checkpoints = sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-000003"]
    folder = out / checkpoints[0]
    state = json.loads((folder / "train_state.json").read_text())
    assert state["step"] == 3 and len(state["losses"]) == 3
    optimizer = load_file(str(folder / "optimizer.safetensors"))
    assert any(k.endswith(".exp_avg") for k in optimizer)
    assert "cpu" in load_file(str(folder / "rng.safetensors"))
    lora_keys = list(load_file(str(folder / LORA_WEIGHTS_FILE)))
    assert lora_keys and all(k.startswith("unet.") for k in lora_keys)
    assert not list(out.glob(".*tmp*")), "temporary folders left behind"


def test_bf16_weights_train_fp32_lora(tiny_pipeline_dir, tiny_dataset, tmp_path):
    result = train_lora(tiny_pipeline_dir("sd15"), tiny_dataset, tmp_path / "run",
                        tiny_config(max_steps=1), dtype=torch.bfloat16,
                        cache_dir=tmp_path / "c")  # fmt: skip
    weights = final_weights(tmp_path / "run")
    assert all(v.dtype == torch.float32 for v in weights.values())
    assert torch.isfinite(torch.tensor(result.losses)).all()


def test_damaged_checkpoint_state_is_reported_with_its_path(
    tiny_pipeline_dir, tiny_dataset, tmp_path
):
    out = tmp_path / "run"
    config = tiny_config(max_steps=3, checkpoint_every=2)
    with pytest.raises(Interrupted):
        train_lora(tiny_pipeline_dir("sd15"), tiny_dataset, out, config,
                   progress=interrupt_at(3), cache_dir=tmp_path / "c")  # fmt: skip
    state = out / "checkpoint-000002" / "train_state.json"
    state.write_text("{truncated")
    with pytest.raises(ValueError, match=r"checkpoint-000002.train_state\.json is unreadable"):
        train_lora(tiny_pipeline_dir("sd15"), tiny_dataset, out, config, cache_dir=tmp_path / "c")
    assert state.read_text() == "{truncated", "the damaged checkpoint must be left as it was"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:24] = b"\xff" * 16
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        (LORA_WEIGHTS_FILE, _truncate),
        ("optimizer.safetensors", lambda p: p.write_bytes(b"")),
        ("rng.safetensors", _corrupt_header),
    ],
)
def test_damaged_checkpoint_tensors_are_named_and_kept(
    tiny_pipeline_dir, tiny_dataset, tmp_path, name, damage
):
    out = tmp_path / "run"
    config = tiny_config(max_steps=3, checkpoint_every=2)
    with pytest.raises(Interrupted):
        train_lora(tiny_pipeline_dir("sd15"), tiny_dataset, out, config,
                   progress=interrupt_at(3), cache_dir=tmp_path / "c")  # fmt: skip
    path = out / "checkpoint-000002" / name
    damage(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=rf"{path} is damaged.*move the checkpoint folder"):
        train_lora(tiny_pipeline_dir("sd15"), tiny_dataset, out, config, cache_dir=tmp_path / "c")
    assert path.read_bytes() == before, "the damaged checkpoint must be left as it was"


def test_unsupported_pipeline_class_is_named():
    from mnc_core.t2i.lora_families import family_of

    with pytest.raises(ValueError, match="no LoRA training support for pipeline class object"):
        family_of(object())
