"""The platform's partitions, defined once: `model`, `dataset` and their pairs.

Both dimensions are dynamic: models and datasets are added while the platform runs
(a new dataset lands, a model joins the zoo). Dagster does not validate dynamic keys,
so keys are only ever added through `add_models` / `add_datasets`, which apply the
project's one id rule (`mnc_core.ids`) to every key first and add nothing if one is
bad. A pair key is read with `pair_of` (`keys_by_dimension`), never by splitting the
string: Dagster orders the dimensions by name ("<dataset>|<model>").
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from mnc_core.ids import check_slug

MODEL = "model"
DATASET = "dataset"

model_partitions = dg.DynamicPartitionsDefinition(name=MODEL)
dataset_partitions = dg.DynamicPartitionsDefinition(name=DATASET)
pair_partitions = dg.MultiPartitionsDefinition(
    {MODEL: model_partitions, DATASET: dataset_partitions}
)


def _checked(ids: Iterable[str], kind: str) -> list[str]:
    """Every id checked first (an error names the bad one), so a bad batch adds nothing."""
    ids = list(ids)
    for item in ids:
        check_slug(item, f"{kind} partition")
    return ids


def add_models(instance: dg.DagsterInstance, models: Iterable[str]) -> list[str]:
    """Add model partitions (slugs only); returns the ids that were new."""
    return _add(instance, MODEL, _checked(models, MODEL))


def add_datasets(instance: dg.DagsterInstance, datasets: Iterable[str]) -> list[str]:
    """Add dataset partitions (slugs only); returns the ids that were new."""
    return _add(instance, DATASET, _checked(datasets, DATASET))


def add_dataset_request(dataset: str) -> dg.AddDynamicPartitionsRequest:
    """The sensor's way to add a dataset partition (checked like `add_datasets`)."""
    return dataset_partitions.build_add_request(_checked([dataset], DATASET))


def _add(instance: dg.DagsterInstance, name: str, ids: list[str]) -> list[str]:
    known = set(instance.get_dynamic_partitions(name))
    new = [i for i in dict.fromkeys(ids) if i not in known]
    if new:
        instance.add_dynamic_partitions(name, new)
    return new


def pair_key(model: str, dataset: str) -> dg.MultiPartitionKey:
    """The partition key of one (model, dataset) pair."""
    return dg.MultiPartitionKey({MODEL: model, DATASET: dataset})


def pair_of(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """(model, dataset) of the running pair partition."""
    return pair_of_key(context.partition_key)


def pair_of_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(model, dataset) of a pair partition key (an event record's key is a plain string)."""
    if not isinstance(key, dg.MultiPartitionKey):
        key = pair_partitions.get_partition_key_from_str(key)
    dims = key.keys_by_dimension
    return dims[MODEL], dims[DATASET]
