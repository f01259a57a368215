"""Model features (paper section 4.2): pipeline configs -> one numeric row per model.

Why: the ranker needs a fixed-length description of every model of the zoo.
The paper parses each pipeline's component configs, keeps the hyperparameters
that differ across the zoo, adds the parameter count and the compute per
image, normalises numbers and one-hot encodes categoricals. This module is the
one implementation of that recipe; the `mnc zoo features` command and the
engine's knowledge base both call `model_feature_table` / `compute_model_features`.

Encoding rules (also in CATALOG.md):
- Each component config (denoiser `unet`/`transformer`, `vae`, `text_encoder*`,
  `scheduler`) is flattened to `<component>_<key>`; lists are expanded by
  position (`unet_block_out_channels_2`), nested dicts by key. The component's
  class (from model_index.json) is `<component>_class`; the pipeline's class and
  options are `pipeline_class`, `pipeline_<option>`. Metadata keys (versions,
  paths, dtypes, label maps) are dropped.
- A column is kept when its value (or its presence) differs between models.
- Numeric columns: bool-only columns stay 0/1; other numbers are standardised
  (z-score over the zoo), after log10 when all values are positive and span a
  factor of 10 or more. A model without the key gets 0 and a `<column>_missing`
  indicator of 1.
- Other columns are one-hot encoded as `<column>_<value>` (None is the value
  `None`); a model without the key has 0 in every one-hot column of it.
- `params` (denoiser state-dict size) and `tflops` (per image at the pipeline's
  default call, see `mnc_core.t2i.zoo.denoiser_cost`) go through the same rule.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mnc_core.t2i.zoo import ZooModel, catalog_model_dirs, load_zoo_configs
from mnc_core.t2i.zoo.denoiser_cost import DenoiserCost, SamplingDefaults, denoiser_cost

logger = logging.getLogger(__name__)

PARAMS_COLUMN = "params"
TFLOPS_COLUMN = "tflops"
MISSING_SUFFIX = "_missing"
# Config keys that describe the file, not the model.
METADATA_KEYS = frozenset(
    {
        "transformers_version",
        "torch_dtype",
        "dtype",
        "architectures",
        "id2label",
        "label2id",
        "task_specific_params",
        "auto_map",
        "name_or_path",
    }
)
# Numbers spanning at least this factor (all positive) are log-scaled first.
LOG_SCALE_RATIO = 10.0


@dataclass(frozen=True)
class ModelFeatures:
    """Model features of a zoo.

    `table`: index = model id, numeric columns only, no NaN (the ranker input).
    `raw`: the flattened hyperparameters before selection and encoding.
    `params` / `tflops`: raw denoiser size (count) and compute (TFLOP per image).
    """

    table: pd.DataFrame
    raw: pd.DataFrame
    params: pd.Series
    tflops: pd.Series
    costs: dict[str, DenoiserCost]


def flatten_config(prefix: str, config: dict[str, Any]) -> dict[str, Any]:
    """Flatten one config to `{prefix_key[_i]: scalar}`, dropping metadata keys."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key.startswith("_") or key in METADATA_KEYS:
            continue
        _flatten_value(f"{prefix}_{key}", value, flat)
    return flat


def _flatten_value(name: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten_value(f"{name}_{key}", item, out)
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            _flatten_value(f"{name}_{position}", item, out)
    else:
        out[name] = value


def raw_hyperparameters(model: ZooModel) -> dict[str, Any]:
    """Every flattened hyperparameter of one pipeline (pipeline + component configs)."""
    row: dict[str, Any] = {"pipeline_class": model.pipeline_class}
    for key, value in model.model_index.items():
        if not key.startswith("_") and not isinstance(value, list):
            _flatten_value(f"pipeline_{key}", value, row)
    for name, component in model.components.items():
        row[f"{name}_class"] = component.class_name
        row.update(flatten_config(name, component.config))
    return row


def _value_key(value: Any) -> str:
    """Hashable, type-aware identity of a value (True differs from 1)."""
    return json.dumps(value, sort_keys=True, default=str)


def differing_columns(raw: pd.DataFrame, present: pd.DataFrame) -> list[str]:
    """Columns whose value or presence is not the same for every model."""
    keep = []
    for column in raw.columns:
        seen = {
            (bool(is_present), _value_key(value) if is_present else None)
            for value, is_present in zip(raw[column], present[column], strict=True)
        }
        if len(seen) > 1:
            keep.append(column)
    return keep


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float)) and math.isfinite(float(value))


def encode_numeric(name: str, values: pd.Series, present: pd.Series) -> pd.DataFrame:
    """Bool columns as 0/1, other numbers (log10 and) standardised.

    A model without the key, or with an explicit null, gets 0 and a 1 in the
    `<name>_missing` indicator.
    """
    known_mask = present & values.map(lambda v: v is not None).astype(bool)
    known = values[known_mask].astype(float)
    is_bool = all(isinstance(v, bool) for v in values[known_mask])
    if not is_bool:
        if (known > 0).all() and known.max() / known.min() >= LOG_SCALE_RATIO:
            known = np.log10(known)
        std = known.std(ddof=0)
        known = (known - known.mean()) / std if std > 0 else known - known.mean()
    encoded = pd.DataFrame({name: known.reindex(values.index).fillna(0.0)})
    if not known_mask.all():
        encoded[name + MISSING_SUFFIX] = (~known_mask).astype(float)
    return encoded


def encode_categorical(name: str, values: pd.Series, present: pd.Series) -> pd.DataFrame:
    """One column `<name>_<value>` per distinct value; absent keys are all zeros."""
    labels = pd.Series(
        [str(v) if ok else None for v, ok in zip(values, present, strict=True)],
        index=values.index,
        dtype=object,
    )
    dummies = pd.get_dummies(labels, prefix=name, prefix_sep="_", dtype=float)
    return dummies.reindex(values.index, fill_value=0.0)


def encode_features(raw: pd.DataFrame, present: pd.DataFrame | None = None) -> pd.DataFrame:
    """Turn flattened hyperparameters into the numeric, NaN-free feature table.

    `present` marks which keys a model's configs have (default: not NaN/None in
    `raw`, which cannot tell an explicit null from an absent key).
    """
    if present is None:
        present = raw.notna()
    parts = []
    for column in differing_columns(raw, present):
        values, mask = raw[column], present[column]
        if all(v is None or _is_number(v) for v in values[mask]):
            parts.append(encode_numeric(column, values, mask))
        else:
            parts.append(encode_categorical(column, values, mask))
    table = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=raw.index)
    collisions = table.columns[table.columns.duplicated()].tolist()
    if collisions:
        raise ValueError(f"feature names collide after encoding: {collisions}")
    return drop_redundant_columns(table.astype(float))


def drop_redundant_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Drop constant columns, and `_missing` indicators that copy an earlier one.

    Why: a family without a component (or a key group) yields one identical
    `_missing` indicator per key; one of them says it all. Named hyperparameter
    columns are all kept, even when equal, so they stay interpretable.
    """
    varying = table.loc[:, table.nunique(dropna=False) > 1]
    indicators = [c for c in varying.columns if c.endswith(MISSING_SUFFIX)]
    copies = varying[indicators].T.duplicated()
    return varying.drop(columns=copies[copies].index)


def _cost_cache_key(model: ZooModel) -> str:
    """Content hash of everything the denoiser cost depends on (no torch import needed)."""
    payload = {
        "pipeline": model.pipeline_class,
        "denoiser": [model.denoiser.class_name, model.denoiser.config],
        "vae": model.vae.config,
        "text": [te.config.get("max_position_embeddings") for te in model.text_encoders],
        "versions": [version("diffusers"), version("torch")],
    }
    return hashlib.sha256(_value_key(payload).encode()).hexdigest()[:32]


def cached_denoiser_cost(model: ZooModel, cache_dir: Path | None) -> DenoiserCost:
    """`denoiser_cost`, memoised on disk by config content when `cache_dir` is given."""
    if cache_dir is None:
        return denoiser_cost(model)
    path = Path(cache_dir) / f"{_cost_cache_key(model)}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            data["sampling"] = SamplingDefaults(**data["sampling"])
            return DenoiserCost(**data)
        except (json.JSONDecodeError, TypeError, KeyError):
            logger.warning("%s: unreadable cost cache entry, recounting", path)
    cost = denoiser_cost(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(cost)))
    tmp.replace(path)
    return cost


def _as_models(models: Iterable[Path | ZooModel] | None) -> list[ZooModel]:
    items = catalog_model_dirs() if models is None else list(models)
    loaded = [m if isinstance(m, ZooModel) else load_zoo_configs(Path(m)) for m in items]
    ids = [m.model_id for m in loaded]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"model ids appear twice: {duplicates}")
    if not loaded:
        raise ValueError("no models given")
    return loaded


def compute_model_features(
    models: Iterable[Path | ZooModel] | None = None, cache_dir: Path | None = None
) -> ModelFeatures:
    """Features of the given pipeline dirs (default: the shipped catalog)."""
    zoo = _as_models(models)
    rows, costs = {}, {}
    for model in zoo:
        logger.info("model features: %s", model.model_id)
        costs[model.model_id] = cached_denoiser_cost(model, cache_dir)
        rows[model.model_id] = raw_hyperparameters(model)
    index = pd.Index([m.model_id for m in zoo], name="model")
    columns = list(dict.fromkeys(key for row in rows.values() for key in row))
    # Built column by column with dtype=object so explicit nulls stay None (not NaN).
    raw = pd.DataFrame(
        {c: pd.Series([rows[i].get(c) for i in index], index=index, dtype=object)
         for c in columns},
        index=index,
    )
    present = pd.DataFrame(
        {c: [c in rows[i] for i in index] for c in columns}, index=index, dtype=bool
    )
    params = pd.Series({i: costs[i].params for i in index}, name=PARAMS_COLUMN).reindex(index)
    tflops = pd.Series({i: costs[i].tflops_per_image for i in index}, name=TFLOPS_COLUMN)
    raw[PARAMS_COLUMN] = params.astype(object)
    raw[TFLOPS_COLUMN] = tflops.reindex(index).astype(object)
    present[PARAMS_COLUMN] = True
    present[TFLOPS_COLUMN] = True
    table = encode_features(raw, present)
    return ModelFeatures(table, raw, params, tflops.reindex(index), costs)


def model_feature_table(
    models: Sequence[Path | ZooModel] | None = None, cache_dir: Path | None = None
) -> pd.DataFrame:
    """One row per model id, numeric columns only, no NaN (the engine's model features)."""
    return compute_model_features(models, cache_dir).table
