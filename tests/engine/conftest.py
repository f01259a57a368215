"""Small knowledge bases and fast engine settings for the engine tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnc_core.engine.embedding import Node2VecSettings
from mnc_core.engine.predict import EngineSettings
from mnc_core.engine.rankers import CatBoostSettings
from mnc_core.kb.schema import KnowledgeBase

FAST = EngineSettings(
    node2vec=Node2VecSettings(dim=8, num_walks=4, walk_length=10, window=3),
    catboost=CatBoostSettings(iterations=30, depth=3),
)


def build_small_kb(
    n_models: int = 5,
    n_datasets: int = 8,
    higher_is_better: bool = False,
    with_before: bool = True,
    seed: int = 0,
) -> KnowledgeBase:
    """Two dataset families; which model is best depends on the family (lower FID wins).

    Scores: family A favours the first models, family B the last ones, plus noise.
    """
    rng = np.random.default_rng(seed)
    models = [f"model-{k}" for k in range(n_models)]
    datasets = [f"{'fam-a' if k % 2 == 0 else 'fam-b'}-{k:02d}" for k in range(n_datasets)]
    family = np.array([k % 2 for k in range(n_datasets)])
    position = np.linspace(-1.0, 1.0, n_models)
    centre = np.where(family == 0, -1.0, 1.0)
    fid = 10 + 4 * np.abs(centre[:, None] - position[None, :]) + rng.normal(
        scale=0.3, size=(n_datasets, n_models)
    )
    score = 100 - fid if higher_is_better else fid
    edges = pd.DataFrame(
        {
            "model": np.tile(models, n_datasets),
            "dataset": np.repeat(datasets, n_models),
            "score": score.ravel(),
            "score_before": (score + rng.normal(scale=3, size=score.shape)).ravel()
            if with_before
            else np.nan,
            "cost": 1.0,
        }
    )
    latent = centre + rng.normal(scale=0.2, size=n_datasets)
    dataset_features = pd.DataFrame(
        {"f0": latent, "f1": rng.normal(size=n_datasets)},
        index=pd.Index(datasets, name="dataset"),
    )
    model_features = pd.DataFrame(
        {"position": position, "size": rng.normal(size=n_models)},
        index=pd.Index(models, name="model"),
    )
    rows = [
        (datasets[i], datasets[j], float(5 * (latent[i] - latent[j]) ** 2 + 0.1))
        for i in range(n_datasets)
        for j in range(i + 1, n_datasets)
    ]
    distances = pd.DataFrame(rows, columns=["dataset_a", "dataset_b", "distance"])
    return KnowledgeBase(
        edges=edges,
        metric="score" if higher_is_better else "clip_fid",
        higher_is_better=higher_is_better,
        model_features=model_features,
        dataset_features=dataset_features,
        dataset_distances=distances,
        description="engine test KB",
        synthetic=True,
    )


@pytest.fixture
def small_kb() -> KnowledgeBase:
    return build_small_kb()


@pytest.fixture
def fast_settings() -> EngineSettings:
    return FAST


@pytest.fixture
def kb_factory():
    """`build_small_kb` itself, for tests that need a variant."""
    return build_small_kb
