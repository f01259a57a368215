"""Compute resources: the GPU (device, dtype, memory limit) and the CLIP embedder.

Steps that train or sample run in the `gpu` concurrency pool and ask `GpuResource`
for their device and dtype, so one setting moves the whole platform between CPU and
GPU. torch and open_clip are imported only inside the methods.
"""

from __future__ import annotations

from functools import cache

import dagster as dg

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


class GpuResource(dg.ConfigurableResource):
    """Device and dtype for training and sampling; `auto` picks CUDA when present."""

    device: str = "auto"
    dtype: str = "auto"
    memory_fraction: float = 0.0  # 0: no limit; else the share of GPU memory a step may use

    def torch_device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def torch_dtype(self):
        """bf16 on CUDA, fp32 on CPU, unless set (`float32`, `bfloat16`, `float16`)."""
        import torch

        if self.dtype == "auto":
            return torch.bfloat16 if self.torch_device().type == "cuda" else torch.float32
        if self.dtype not in _DTYPES:
            raise ValueError(f"gpu.dtype {self.dtype!r} is not one of {sorted(_DTYPES)}")
        return getattr(torch, _DTYPES[self.dtype])

    def prepare(self):
        """Apply the memory limit (CUDA only) and return the device."""
        import torch

        device = self.torch_device()
        if device.type == "cuda" and self.memory_fraction > 0:
            torch.cuda.set_per_process_memory_fraction(self.memory_fraction, device)
        return device


class ClipSettings(dg.ConfigurableResource):
    """Which CLIP embeds datasets and samples: a shipped random config or a local checkpoint."""

    model: str = "tiny-vit"
    checkpoint: str | None = None
    device: str = "cpu"
    batch_size: int = 64

    def load(self):
        """The embedder (built once per process and reused by later steps)."""
        return _load_clip(self.model, self.checkpoint, self.device)


@cache
def _load_clip(model: str, checkpoint: str | None, device: str):
    from pathlib import Path

    from mnc_core.t2i.clip_embed import load_clip

    return load_clip(model, Path(checkpoint) if checkpoint else None, device=device)
