"""Image-set distances on precomputed features: CLIP-FID, KID, CMMD, and Inception FID.

Match & Choose uses one metric for both kinds of graph edge (model-dataset and
dataset-dataset), so every distance here works on feature matrices (N x D) and never
on a particular feature extractor. The Frechet and kernel distances are clean-fid's
own implementations, fed our features; CMMD follows its reference code (Jayasumana
et al. 2024, google-research/cmmd). Inception FID uses clean-fid's torchscript
Inception wrapper, loaded only from a file the user supplies (clean-fid would
otherwise download it at run time, which this project never does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from cleanfid import fid as cleanfid_fid

log = logging.getLogger(__name__)

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
KID_SUBSETS = 100
KID_MAX_SUBSET = 1000
INCEPTION_FILE_NAME = "inception-2015-12-05.pt"


class FeatureError(ValueError):
    """Features that cannot be compared (too few rows, wrong shape, NaN, different dims)."""


def check_features(feats: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    """Return `feats` as a finite float64 N x D array, or raise `FeatureError` naming `name`."""
    array = np.asarray(feats, dtype=np.float64)
    if array.ndim != 2:
        raise FeatureError(f"{name}: expected an N x D feature matrix, got shape {array.shape}")
    if array.shape[0] < min_rows:
        raise FeatureError(f"{name}: {array.shape[0]} samples, at least {min_rows} needed")
    if array.shape[1] < 1:
        raise FeatureError(f"{name}: features have zero dimensions")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise FeatureError(f"{name}: {bad} rows contain NaN or infinite values")
    return array


def _check_pair(feats_a: np.ndarray, feats_b: np.ndarray, min_rows: int = 2):
    a = check_features(feats_a, "feats_a", min_rows)
    b = check_features(feats_b, "feats_b", min_rows)
    if a.shape[1] != b.shape[1]:
        raise FeatureError(f"feature dimensions differ: feats_a has {a.shape[1]}, "
                           f"feats_b has {b.shape[1]}")
    return a, b


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of a feature matrix, as clean-fid computes them."""
    array = check_features(feats, "features")
    return np.mean(array, axis=0), np.cov(array, rowvar=False)


def frechet_from_stats(
    mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray
) -> float:
    """Frechet distance between N(mu1, s1) and N(mu2, s2) (clean-fid's stable version)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise FeatureError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {s1.shape} vs {s2.shape}"
        )
    for name, value in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.isfinite(value).all():
            raise FeatureError(f"{name} contains NaN or infinite values")
    distance = float(cleanfid_fid.frechet_distance(mu1, s1, mu2, s2))
    # sqrtm round-off can leave a tiny negative number for (near-)identical statistics
    return max(distance, 0.0)


def clip_fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets (CLIP-FID on CLIP)."""
    a, b = _check_pair(feats_a, feats_b)
    return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b))


def kid(
    feats_a: np.ndarray,
    feats_b: np.ndarray,
    seed: int = 0,
    num_subsets: int = KID_SUBSETS,
    max_subset_size: int = KID_MAX_SUBSET,
) -> float:
    """Kernel Inception Distance (clean-fid's kernel_distance), reproducible for a given seed.

    clean-fid draws its subsets with the global `np.random` state; the state is seeded
    here and restored afterwards, so the result depends on `seed` only and callers'
    random streams are left as they were.
    """
    a, b = _check_pair(feats_a, feats_b)
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        return float(cleanfid_fid.kernel_distance(
            a, b, num_subsets=num_subsets, max_subset_size=max_subset_size
        ))
    finally:
        np.random.set_state(saved)


def _rbf_mean(x: np.ndarray, y: np.ndarray, gamma: float, drop_diagonal: bool) -> float:
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    k = np.exp(-gamma * np.maximum(sq, 0.0))
    if not drop_diagonal:
        return float(k.mean())
    n = k.shape[0]
    return float((k.sum() - np.trace(k)) / (n * (n - 1)))


def cmmd(
    feats_a: np.ndarray,
    feats_b: np.ndarray,
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
    unbiased: bool = False,
) -> float:
    """CMMD: scale x MMD^2 with a Gaussian RBF kernel (bandwidth `sigma`) on L2-normalised features.

    The default is the estimator of the reference code (google-research/cmmd
    `distance.mmd`): kernel means over all pairs, diagonals included, which the
    reference calls the minimum-variance estimator of Gretton et al. (2012), eq. 5;
    it is exactly 0 for identical sets. `unbiased=True` drops the within-set
    diagonals (the U-statistic): 0 in expectation for two samples of one distribution,
    and possibly slightly negative.
    """
    a, b = _check_pair(feats_a, feats_b)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    gamma = 1.0 / (2.0 * sigma**2)
    k_aa = _rbf_mean(a, a, gamma, drop_diagonal=unbiased)
    k_bb = _rbf_mean(b, b, gamma, drop_diagonal=unbiased)
    k_ab = _rbf_mean(a, b, gamma, drop_diagonal=False)
    return float(scale * (k_aa + k_bb - 2.0 * k_ab))


def load_inception(weights: Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """clean-fid's Inception feature network from a local torchscript file (never downloaded).

    `weights` is the file clean-fid itself would download (`inception-2015-12-05.pt`,
    the StyleGAN2-ADA torchscript Inception); clean-fid's wrapper looks it up by that
    name in a folder, so the file must keep its name.
    """
    from cleanfid.inception_torchscript import InceptionV3W

    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"Inception weights {weights} not found (supply a local file)")
    if weights.name != INCEPTION_FILE_NAME:
        raise ValueError(
            f"Inception weights {weights}: clean-fid expects the file name "
            f"{INCEPTION_FILE_NAME!r}; rename or link it"
        )
    model = InceptionV3W(str(weights.parent), download=False, resize_inside=False)
    return model.to(device).eval()


def inception_features(
    images: Sequence[Path],
    weights: Path | torch.nn.Module,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
) -> np.ndarray:
    """2048-d Inception pool features of image files, with clean-fid's "clean" resizing.

    `weights` is the torchscript file, or a network already returned by `load_inception`.
    """
    if not images:
        raise FeatureError("no images given for Inception features")
    model = weights if isinstance(weights, torch.nn.Module) else load_inception(weights, device)
    return cleanfid_fid.get_files_features(
        [str(p) for p in images], model=model, num_workers=0, batch_size=batch_size,
        device=torch.device(device), mode="clean", description="inception features",
    )


def inception_fid(
    images_a: Sequence[Path],
    images_b: Sequence[Path],
    weights: Path,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
) -> float:
    """Standard (clean-fid "clean" mode) FID between two lists of image files."""
    model = load_inception(weights, device)
    feats_a = inception_features(images_a, model, device, batch_size)
    feats_b = inception_features(images_b, model, device, batch_size)
    return clip_fid(feats_a, feats_b)
