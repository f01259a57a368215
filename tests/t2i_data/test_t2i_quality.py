"""Image-set distances: closed forms, signs and scales, reproducibility, refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mnc_core.t2i.quality import (
    INCEPTION_FILE_NAME,
    FeatureError,
    clip_fid,
    cmmd,
    frechet_from_stats,
    inception_features,
    inception_fid,
    kid,
    load_inception,
)
from mnc_core.t2i.synthetic_data import make_synthetic_dataset


def _gauss(n: int, d: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_frechet_matches_the_closed_form_for_diagonal_gaussians() -> None:
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    by_hand = float(((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * np.sqrt(var1 * var2)).sum())
    # 1 + 0 + 6.25 + (1+9-6) + (4+1-4) + 0 = 12.25
    assert by_hand == pytest.approx(12.25)
    got = frechet_from_stats(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(by_hand, rel=1e-9)


def test_clip_fid_of_samples_approaches_the_closed_form() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(loc=[0, 0, 0, 0], scale=[1, 1, 2, 1], size=(40000, 4))
    b = rng.normal(loc=[1, 0, 0, 2], scale=[1, 3, 2, 1], size=(40000, 4))
    # means: 1 + 4; covariances: (1+9-2*3) for the second axis, others cancel
    assert clip_fid(a, b) == pytest.approx(5.0 + 4.0, rel=0.03)


def test_identical_sets_give_zero() -> None:
    x = _gauss(64, 8)
    assert clip_fid(x, x) == pytest.approx(0.0, abs=1e-6)
    assert cmmd(x, x) == pytest.approx(0.0, abs=1e-9)
    assert abs(kid(x, x)) < 0.05 * kid(x, _gauss(64, 8, shift=1.0, seed=1))


def test_fid_is_symmetric_and_grows_with_shift() -> None:
    base = _gauss(300, 6)
    values = [clip_fid(base, _gauss(300, 6, shift=s, seed=1)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] < values[1]
    other = _gauss(300, 6, shift=1.0, seed=1)
    assert clip_fid(base, other) == pytest.approx(clip_fid(other, base), rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_shift() -> None:
    same = [kid(_gauss(200, 16, seed=s), _gauss(200, 16, seed=100 + s)) for s in range(5)]
    shifted = [kid(_gauss(200, 16), _gauss(200, 16, shift=s, seed=1)) for s in (0.25, 0.5, 1.0)]
    assert abs(np.mean(same)) < 0.1 * shifted[0]
    assert 0 < shifted[0] < shifted[1] < shifted[2]


def test_kid_is_reproducible_by_seed_and_leaves_numpy_random_alone() -> None:
    a, b = _gauss(120, 8), _gauss(120, 8, shift=0.3, seed=1)
    np.random.seed(42)
    expected_next = np.random.rand()
    np.random.seed(42)
    first = kid(a, b, seed=7, max_subset_size=50)
    assert np.random.rand() == expected_next
    assert kid(a, b, seed=7, max_subset_size=50) == first
    assert kid(a, b, seed=8, max_subset_size=50) != first


def _rbf(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> float:
    return math.exp(-float(((x - y) ** 2).sum()) / (2 * sigma**2))


def test_cmmd_matches_a_hand_computation_with_scale_1000() -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [-1.0, 0.0]])
    k = _rbf
    k_aa = (k(a[0], a[0]) + k(a[1], a[1]) + 2 * k(a[0], a[1])) / 4
    k_bb = (k(b[0], b[0]) + k(b[1], b[1]) + 2 * k(b[0], b[1])) / 4
    k_ab = sum(k(x, y) for x in a for y in b) / 4
    assert cmmd(a, b) == pytest.approx(1000 * (k_aa + k_bb - 2 * k_ab), rel=1e-9)
    assert cmmd(a, b) == pytest.approx(1000 * cmmd(a, b, scale=1.0), rel=1e-12)
    u_aa, u_bb = k(a[0], a[1]), k(b[0], b[1])
    assert cmmd(a, b, unbiased=True) == pytest.approx(1000 * (u_aa + u_bb - 2 * k_ab), rel=1e-9)


def test_cmmd_works_on_l2_normalised_embeddings() -> None:
    x, y = _gauss(50, 8), _gauss(50, 8, shift=0.5, seed=1)
    scales = np.random.default_rng(3).uniform(0.1, 10.0, size=(50, 1))
    assert cmmd(x * scales, y) == pytest.approx(cmmd(x, y), rel=1e-9)


def test_cmmd_sign_and_growth() -> None:
    def directions(angle: float, seed: int) -> np.ndarray:
        """Unit vectors scattered around a direction `angle` radians from the first axis."""
        centre = np.zeros(16)
        centre[0], centre[1] = math.cos(angle), math.sin(angle)
        return centre + 0.3 * _gauss(150, 16, seed=seed)

    same = [cmmd(directions(0, s), directions(0, 50 + s), unbiased=True) for s in range(5)]
    grows = [cmmd(directions(0, 0), directions(a, 1)) for a in (0.3, 0.8, 1.6)]
    assert abs(np.mean(same)) < 0.05 * grows[0]
    assert 0 < grows[0] < grows[1] < grows[2]


@pytest.mark.parametrize("metric", [clip_fid, kid, cmmd])
def test_bad_features_are_refused(metric) -> None:
    good = _gauss(10, 4)
    with pytest.raises(FeatureError, match="at least 2"):
        metric(good, good[:1])
    with pytest.raises(FeatureError, match="dimensions differ"):
        metric(good, _gauss(10, 5))
    with_nan = good.copy()
    with_nan[3, 1] = np.nan
    with pytest.raises(FeatureError, match="1 rows contain NaN"):
        metric(with_nan, good)
    with pytest.raises(FeatureError, match="N x D"):
        metric(good[:, 0], good)


def test_frechet_from_stats_refuses_mismatched_or_nan_statistics() -> None:
    with pytest.raises(FeatureError, match="do not match"):
        frechet_from_stats(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(FeatureError, match="sigma2"):
        frechet_from_stats(np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.nan))


class _TinyInceptionLayers(torch.nn.Module):
    """Random 2048-d image features: the interface of clean-fid's torchscript Inception."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.proj = torch.nn.Linear(48, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x).flatten(1))


class _TinyInception(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = _TinyInceptionLayers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@pytest.fixture
def tiny_inception_file(tmp_path: Path) -> Path:
    """A small random torchscript network saved under clean-fid's Inception file name.

    It stands in for the real 100 MB file to test the wiring (clean-fid resizing to
    299 px, clean-fid's loader, feature shapes); the real file is tested below when the
    environment variable MNC_INCEPTION_WEIGHTS points to it.
    """
    torch.manual_seed(0)
    path = tmp_path / "weights" / INCEPTION_FILE_NAME
    path.parent.mkdir()
    torch.jit.script(_TinyInception()).save(str(path))
    return path


def test_inception_features_through_clean_fid_with_a_local_file(
    tmp_path: Path, tiny_inception_file: Path
) -> None:
    a = sorted(make_synthetic_dataset(tmp_path / "a", "scenes", 6, 0, 32).glob("*.png"))
    feats = inception_features(a + a[:2], tiny_inception_file, batch_size=4)
    assert feats.shape == (8, 2048) and np.isfinite(feats).all()
    assert np.allclose(feats[6:], feats[:2], atol=1e-5), "same file, same features"
    assert not np.allclose(feats[0], feats[1])


@pytest.mark.slow
def test_inception_fid_through_clean_fid_with_a_local_file(
    tmp_path: Path, tiny_inception_file: Path
) -> None:
    """Slow: the 2048 x 2048 matrix square root dominates (about a minute on 2 CPU cores)."""
    a = sorted(make_synthetic_dataset(tmp_path / "a", "scenes", 6, 0, 32).glob("*.png"))
    b = sorted(make_synthetic_dataset(tmp_path / "b", "glyphs", 6, 0, 32).glob("*.png"))
    assert inception_fid(a, a, tiny_inception_file) == pytest.approx(0.0, abs=1e-3)
    assert inception_fid(a, b, tiny_inception_file) > 1.0


def test_inception_weights_must_be_a_local_file_with_clean_fids_name(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_inception(tmp_path / INCEPTION_FILE_NAME)
    (tmp_path / "inception.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=INCEPTION_FILE_NAME):
        load_inception(tmp_path / "inception.pt")


@pytest.mark.slow
def test_real_inception_weights_when_available(tmp_path: Path) -> None:
    import os

    weights = os.environ.get("MNC_INCEPTION_WEIGHTS")
    if not weights or not Path(weights).is_file():
        pytest.skip("MNC_INCEPTION_WEIGHTS does not point to clean-fid's Inception file")
    a = sorted(make_synthetic_dataset(tmp_path / "a", "scenes", 8, 0, 64).glob("*.png"))
    b = sorted(make_synthetic_dataset(tmp_path / "b", "glyphs", 8, 0, 64).glob("*.png"))
    assert inception_fid(a, a, Path(weights)) == pytest.approx(0.0, abs=1e-2)
    assert inception_fid(a, b, Path(weights)) > inception_fid(a, a, Path(weights))
