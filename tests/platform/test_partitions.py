"""Dynamic partition keys go through the one slug rule; pair keys are read by dimension."""

from __future__ import annotations

import dagster as dg
import pytest

from mnc_assets.partitions import (
    DATASET,
    MODEL,
    add_dataset_request,
    add_datasets,
    add_models,
    pair_key,
    pair_partitions,
)
from mnc_core.ids import InvalidIdError


@pytest.mark.parametrize("bad", ["a|b", "Upper", "x/y", "a,b", "[x]", "..", "", "-lead"])
def test_a_bad_id_is_refused_by_name_and_nothing_is_added(bad):
    with dg.instance_for_test() as instance:
        with pytest.raises(InvalidIdError, match="not a slug"):
            add_models(instance, ["good-model", bad])
        with pytest.raises(InvalidIdError):
            add_datasets(instance, [bad])
        with pytest.raises(InvalidIdError):
            add_dataset_request(bad)
        assert instance.get_dynamic_partitions(MODEL) == []
        assert instance.get_dynamic_partitions(DATASET) == []


def test_adding_twice_adds_once_and_pairs_follow():
    with dg.instance_for_test() as instance:
        assert add_models(instance, ["sd15", "sdxl"]) == ["sd15", "sdxl"]
        assert add_models(instance, ["sdxl", "flux"]) == ["flux"]
        add_datasets(instance, ["pets"])
        keys = pair_partitions.get_partition_keys(dynamic_partitions_store=instance)
        assert {(k.keys_by_dimension[MODEL], k.keys_by_dimension[DATASET]) for k in keys} == {
            ("sd15", "pets"), ("sdxl", "pets"), ("flux", "pets")}


def test_pair_key_orders_dimensions_by_name_and_reads_back_by_dimension():
    key = pair_key("sdxl", "pets")
    assert str(key) == "pets|sdxl"  # Dagster's order: dimensions sorted by name
    parsed = pair_partitions.get_partition_key_from_str(str(key))
    assert parsed.keys_by_dimension == {MODEL: "sdxl", DATASET: "pets"}
