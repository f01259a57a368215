"""Assembling one knowledge base from computed and imported sources (mnc_core.kb.assemble)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnc_core.kb.assemble import (
    EdgeSource,
    check_same_metric,
    combine_distances,
    combine_features,
    embedding_features,
    merge_edges,
)


def _edges(*rows):
    return pd.DataFrame(rows, columns=["model", "dataset", "score", "score_before", "cost"])


def _source(name, *rows, metric="clip_fid", higher=False):
    return EdgeSource(name, _edges(*rows), metric, higher)


def test_computed_wins_then_imported_in_order_and_conflicts_are_listed():
    computed = _source("computed", ("m1", "d1", 1.0, 5.0, 0.1))
    first = _source("imported:a", ("m1", "d1", 9.0, None, None), ("m2", "d1", 3.0, None, None))
    second = _source("imported:b", ("m2", "d1", 4.0, None, None), ("m2", "d2", 6.0, None, None))
    edges, conflicts = merge_edges([computed, first, second])
    by_pair = edges.set_index(["model", "dataset"])
    assert by_pair.loc[("m1", "d1"), "score"] == 1.0
    assert by_pair.loc[("m1", "d1"), "provenance"] == "computed"
    assert by_pair.loc[("m2", "d1"), "score"] == 3.0
    assert by_pair.loc[("m2", "d2"), "provenance"] == "imported:b"
    assert len(edges) == 3
    assert conflicts.set_index(["model", "dataset"])["kept"].to_dict() == {
        ("m1", "d1"): "computed", ("m2", "d1"): "imported:a"}
    assert conflicts.set_index(["model", "dataset"]).loc[("m2", "d1"), "dropped"] == "imported:b"


def test_a_pair_listed_twice_by_one_source_is_kept_for_the_checks_to_refuse():
    edges, conflicts = merge_edges([_source("computed", ("m1", "d1", 1.0, None, None),
                                            ("m1", "d1", 2.0, None, None))])
    assert sorted(edges["score"]) == [1.0, 2.0]
    assert conflicts.empty


def test_sources_with_different_metrics_are_refused_naming_the_folder():
    computed = _source("computed", ("m1", "d1", 1.0, None, None))
    accuracy = _source("imported:/kb/tg", ("m1", "d2", 0.9, None, None),
                       metric="eval_accuracy", higher=True)
    with pytest.raises(ValueError, match="imported:/kb/tg.*eval_accuracy"):
        check_same_metric([computed, accuracy])
    assert check_same_metric([computed]) == ("clip_fid", False)


def test_features_union_columns_first_source_wins_missing_is_zero():
    computed = pd.DataFrame({"a": [1.0, 2.0]}, index=["m1", "m2"])
    imported = pd.DataFrame({"a": [7.0, 8.0], "b": [3.0, 4.0]}, index=["m2", "m3"])
    combined = combine_features([computed, imported], "model")
    assert combined.to_dict("index") == {
        "m1": {"a": 1.0, "b": 0.0}, "m2": {"a": 2.0, "b": 0.0}, "m3": {"a": 8.0, "b": 4.0}}
    assert combined.index.name == "model"


def test_embedding_features_are_centred_means():
    means = pd.Series({"d1": [1.0, 3.0], "d2": [3.0, 5.0]})
    table = embedding_features(means)
    assert list(table.columns) == ["clip_0", "clip_1"]
    np.testing.assert_allclose(table.to_numpy(), [[-1.0, -1.0], [1.0, 1.0]])


def test_distances_each_unordered_pair_once_first_wins():
    newer = pd.DataFrame({"dataset_a": ["d2", "d3"], "dataset_b": ["d1", "d3"],
                          "distance": [5.0, 0.0]})
    older = pd.DataFrame({"dataset_a": ["d1", "d1"], "dataset_b": ["d2", "d3"],
                          "distance": [4.0, 6.0]})
    combined = combine_distances([newer, older])
    pairs = {(a, b): d for a, b, d in combined.itertuples(index=False)}
    assert pairs == {("d1", "d2"): 5.0, ("d1", "d3"): 6.0}
