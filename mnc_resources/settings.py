"""Settings resources: fine-tuning and sampling, the engine, and the imported knowledge.

`T2ISettings` defaults are the paper's (10 000 LoRA steps at 512 px, 30 sampling
steps); the `tiny` profile (`MNC_PROFILE=tiny`) is what the demo and the tests run on
CPU with tiny random-weight pipelines.
"""

from __future__ import annotations

import dagster as dg

from mnc_core.engine import decision_defaults


class T2ISettings(dg.ConfigurableResource):
    """How each (model, dataset) pair is fine-tuned, sampled and scored."""

    train_steps: int = 10_000
    batch_size: int = 8
    learning_rate: float = 1e-5
    lora_rank: int = 16
    resolution: int = 512
    checkpoint_every: int = 500
    sample_steps: int = 30
    max_samples: int | None = None  # None: one image per validation caption
    val_fraction: float = 0.25
    min_pairs: int = 8
    extra_metrics: bool = False  # KID and CMMD beside CLIP-FID
    seed: int = 0

    @classmethod
    def from_profile(cls, profile: str) -> T2ISettings:
        """`paper` (the defaults) or `tiny` (a few CPU steps at 32 px, for demo and tests)."""
        if profile == "paper":
            return cls()
        if profile == "tiny":
            return cls(train_steps=4, batch_size=2, learning_rate=1e-4, lora_rank=4,
                       resolution=32, checkpoint_every=2, sample_steps=2, max_samples=8)
        raise ValueError(f"MNC_PROFILE {profile!r} is not 'paper' or 'tiny'")

    def lora_config(self):
        from mnc_core.t2i.lora_training import LoraTrainConfig

        return LoraTrainConfig(
            max_steps=self.train_steps, batch_size=self.batch_size,
            learning_rate=self.learning_rate, rank=self.lora_rank, resolution=self.resolution,
            checkpoint_every=self.checkpoint_every, seed=self.seed,
        )

    def sampling_config(self):
        from mnc_core.t2i.sampling import SamplingConfig

        return SamplingConfig(
            num_inference_steps=self.sample_steps, resolution=self.resolution,
            seed=self.seed, max_images=self.max_samples,
        )


DEFAULT_SHORTLIST_TARGET = decision_defaults.SHORTLIST_TARGET
DEFAULT_STOP_PROBABILITY = decision_defaults.STOP_PROBABILITY


class EngineConfig(dg.ConfigurableResource):
    """The selection engine's knobs (the same as `mnc rank` / `mnc evaluate` / `mnc next`
    flags): `shortlist_target` is `mnc rank --shortlist --probability`, the near-best
    probability the shortlist must reach; `stop_probability` is `mnc next
    --stop-probability`, the tried models' near-best probability at which to stop."""

    ranker: str = "catboost-class"
    seed: int = 0
    walks: int | None = None
    iterations: int | None = None
    shortlist_target: float = DEFAULT_SHORTLIST_TARGET
    stop_probability: float = DEFAULT_STOP_PROBABILITY

    def settings(self):
        from mnc_core.engine.predict import engine_settings

        return engine_settings(self.ranker, self.walks, self.iterations)


class KnowledgeImports(dg.ConfigurableResource):
    """Knowledge-base folders (the engine's format) whose edges join the computed ones."""

    folders: list[str] = []
