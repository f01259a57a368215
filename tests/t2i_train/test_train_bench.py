"""The GPU benchmark script: full-size configs build, and the CPU quick mode runs end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "t2i_train_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("t2i_train_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_full_size_unets_from_the_catalog_have_the_published_sizes(bench):
    """SD 1.5's UNet has about 860M parameters and SDXL's about 2.57B (built on 'meta')."""
    sizes = {}
    for case in bench.FULL_CASES:
        pipe = bench.full_pipeline(case, torch.device("meta"))
        sizes[case.name] = sum(p.numel() for p in pipe.unet.parameters())
    assert 0.85e9 < sizes["sd15"] < 0.87e9
    assert 2.55e9 < sizes["sdxl"] < 2.58e9
    assert [c.resolution for c in bench.FULL_CASES] == [512, 1024]
    assert all(c.batch_size == 8 for c in bench.FULL_CASES)


def test_quick_mode_writes_positive_figures(bench, tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--steps", "1", "--models", "sd15", "--out", str(out),
                       "--workdir", str(tmp_path)]) == 0  # fmt: skip
    results = json.loads(out.read_text())
    row = results["train"]["sd15"]
    assert row["ours_it_per_s"] > 0 and row["reference_it_per_s"] > 0
    assert row["speedup"] == pytest.approx(row["ours_it_per_s"] / row["reference_it_per_s"])
    assert results["clip"]["images_per_s"] > 0 and results["clip"]["score_10k_s"] > 0
