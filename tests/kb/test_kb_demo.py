"""The synthetic demo KB has the structure its docstring claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from mnc_core.ids import is_slug
from mnc_core.kb.demo import FAMILIES, ZOO_MODEL_IDS, dataset_family, make_demo_kb
from mnc_core.kb.store import read_kb, write_kb

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def kbs() -> dict:
    return {seed: make_demo_kb(seed) for seed in SEEDS}


def _before_matrix(kb) -> pd.DataFrame:
    return kb.edges.pivot(index="dataset", columns="model", values="score_before").reindex(
        index=kb.datasets, columns=kb.models
    )


def _distance_lookup(kb) -> dict:
    lookup = {}
    for a, b, d in kb.dataset_distances.itertuples(index=False):
        lookup[(a, b)] = lookup[(b, a)] = d
    return lookup


def test_default_shape_ids_and_labels(kbs: dict) -> None:
    kb = kbs[0]
    assert kb.models == list(ZOO_MODEL_IDS)
    assert len(kb.datasets) == 32 and all(is_slug(d) for d in kb.datasets)
    assert {dataset_family(d) for d in kb.datasets} == set(FAMILIES)
    assert len(kb.edges) == 320 and kb.score_matrix().notna().all().all()
    assert len(kb.dataset_distances) == 32 * 31 // 2
    assert kb.synthetic and "SYNTHETIC" in kb.description
    assert (kb.metric, kb.higher_is_better) == ("clip_fid", False)


def test_values_in_plausible_ranges(kbs: dict) -> None:
    for kb in kbs.values():
        assert kb.edges["score"].between(3.0, 60.0).all()
        assert kb.edges["cost"].between(2.0, 8.0).all()
        assert (kb.dataset_distances["distance"] >= 0).all()
        norms = np.linalg.norm(kb.dataset_features.to_numpy(), axis=1)
        np.testing.assert_allclose(norms, 1.0)


def test_no_single_model_is_best_everywhere(kbs: dict) -> None:
    for kb in kbs.values():
        best = kb.score_matrix().idxmin(axis=1)
        assert best.value_counts().iloc[0] / len(best) <= 0.45
        assert best.nunique() >= 5
        favourite = best.groupby([dataset_family(d) for d in best.index]).agg(
            lambda s: s.value_counts().index[0]
        )
        assert favourite.nunique() >= len(favourite) // 2


def test_before_fine_tuning_is_mostly_worse_and_weakly_related(kbs: dict) -> None:
    for kb in kbs.values():
        after, before = kb.score_matrix(), _before_matrix(kb)
        assert (before > after).to_numpy().mean() >= 0.9
        rho = np.mean([spearmanr(after.loc[d], before.loc[d]).statistic for d in kb.datasets])
        assert rho < 0.6


def test_family_structure_visible_in_distances(kbs: dict) -> None:
    for kb in kbs.values():
        dist = kb.dataset_distances
        pairs = zip(dist.dataset_a, dist.dataset_b, strict=True)
        same = np.array([dataset_family(a) == dataset_family(b) for a, b in pairs])
        assert dist.distance[same].mean() < 0.5 * dist.distance[~same].mean()
        lookup = _distance_lookup(kb)
        nearest_same = [
            dataset_family(min((o for o in kb.datasets if o != d), key=lambda o: lookup[(d, o)]))
            == dataset_family(d)
            for d in kb.datasets
        ]
        # Chance level is 3/31; families may overlap a little, as real ones do.
        assert np.mean(nearest_same) >= 0.6


def _leave_one_out(kb) -> dict[str, tuple[float, float]]:
    """OSR and O2O of Overall, Initial and a 3-nearest-dataset predictor."""
    scores, before, lookup = kb.score_matrix(), _before_matrix(kb), _distance_lookup(kb)
    picks: dict[str, list[str]] = {"overall": [], "initial": [], "nearest": []}
    for d in kb.datasets:
        others = [o for o in kb.datasets if o != d]
        picks["overall"].append(scores.loc[others].rank(axis=1).mean().idxmin())
        picks["initial"].append(before.loc[d].idxmin())
        near = sorted(others, key=lambda o: lookup[(d, o)])[:3]
        picks["nearest"].append(scores.loc[near].rank(axis=1).mean().idxmin())
    best = scores.min(axis=1)
    result = {}
    for name, chosen in picks.items():
        got = np.array([scores.loc[d, m] for d, m in zip(kb.datasets, chosen, strict=True)])
        result[name] = (float(np.mean(got == best.to_numpy())), float(np.mean(got - best)))
    return result


def test_dataset_aware_predictor_beats_overall_and_initial(kbs: dict) -> None:
    for kb in kbs.values():
        res = _leave_one_out(kb)
        assert res["nearest"][0] > res["overall"][0]
        assert res["nearest"][1] < res["overall"][1]
        assert res["nearest"][0] > res["initial"][0]
        # Overall is decent: its pick is on average within a few FID points of the best.
        assert res["overall"][1] < 8.0


def test_deterministic_for_a_seed_and_different_for_another() -> None:
    a, b, c = make_demo_kb(7), make_demo_kb(7), make_demo_kb(8)
    pd.testing.assert_frame_equal(a.edges, b.edges)
    pd.testing.assert_frame_equal(a.dataset_distances, b.dataset_distances)
    pd.testing.assert_frame_equal(a.dataset_features, b.dataset_features)
    assert not np.allclose(a.edges["score"], c.edges["score"])
    assert not np.allclose(a.dataset_features, c.dataset_features)


def test_model_features_are_replaceable_without_changing_scores() -> None:
    default = make_demo_kb(3)
    real = pd.DataFrame(
        {"feature_x": np.arange(10.0)}, index=pd.Index(list(ZOO_MODEL_IDS)[::-1], name="model")
    )
    swapped = make_demo_kb(3, model_features=real)
    pd.testing.assert_frame_equal(default.edges, swapped.edges)
    assert swapped.models == list(ZOO_MODEL_IDS)
    assert list(swapped.model_features["feature_x"]) == list(np.arange(10.0)[::-1])
    with pytest.raises(ValueError, match="model_features index must be exactly"):
        make_demo_kb(3, model_features=real.iloc[:5])


def test_other_sizes_generate_ids(tmp_path: Path) -> None:
    kb = make_demo_kb(seed=1, n_datasets=12, n_models=4)
    assert kb.models == ["model-00", "model-01", "model-02", "model-03"]
    assert len(kb.datasets) == 12 and len(set(kb.datasets)) == 12
    assert kb.model_features.notna().all().all()
    loaded = read_kb(write_kb(kb, tmp_path / "kb"))
    pd.testing.assert_frame_equal(loaded.edges, kb.edges)
    with pytest.raises(ValueError, match="n_models must be at least 2"):
        make_demo_kb(n_models=1)
