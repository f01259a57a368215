"""Per-model assets: the pipeline directory (checked offline) and its feature row.

The feature row holds the model's flattened configs and measured size and compute
(`mnc_core.t2i.model_features`, the same code as `mnc zoo features`); the zoo-wide
encoding (which hyperparameters differ, z-scores, one-hot) needs every model, so it
is applied when the knowledge is assembled.
"""


import json

import dagster as dg
import pandas as pd

from mnc_assets.metadata import markdown_table, table_metadata
from mnc_assets.partitions import model_partitions
from mnc_resources import ArtifactStore, ModelStore, Warehouse

GROUP = "models"


@dg.asset(partitions_def=model_partitions, group_name=GROUP, kinds={"diffusers"})
def model_pipeline(context: dg.AssetExecutionContext, model_store: ModelStore):
    """The model's local diffusers pipeline folder, every component present (no download)."""
    from mnc_core.t2i.pipelines import check_pipeline_dir

    folder = model_store.pipeline_dir(context.partition_key)
    index = check_pipeline_dir(folder)
    components = pd.DataFrame(
        [(name, lib, cls) for name, (lib, cls) in index.components.items()],
        columns=["component", "library", "class"],
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(folder)),
            "pipeline_class": index.class_name,
            "components": dg.MetadataValue.md(markdown_table(components)),
        }
    )


@dg.asset(
    partitions_def=model_partitions, group_name=GROUP, deps=[model_pipeline], kinds={"duckdb"}
)
def model_feature_row(
    context: dg.AssetExecutionContext,
    model_store: ModelStore,
    artifacts: ArtifactStore,
    warehouse: Warehouse,
):
    """The model's configs, parameter count and TFLOPs per image (paper section 4.2)."""
    from mnc_core.t2i.model_features import PARAMS_COLUMN, TFLOPS_COLUMN, compute_model_features

    model = context.partition_key
    features = compute_model_features(
        [model_store.pipeline_dir(model)], cache_dir=artifacts.layout.model_costs_dir()
    )
    raw = features.raw.iloc[0].drop([PARAMS_COLUMN, TFLOPS_COLUMN])
    row = pd.DataFrame(
        {
            "model": [model],
            "pipeline_class": [str(raw.get("pipeline_class"))],
            "params": [float(features.params.iloc[0])],
            "tflops_per_image": [float(features.tflops.iloc[0])],
            "hyperparameters": [json.dumps(raw.to_dict(), default=str, sort_keys=True)],
            "computed_at": [pd.Timestamp.now()],
        }
    )
    warehouse.replace_partition("model_features", {"model": model}, row)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(row),
            "params_G": float(features.params.iloc[0]) / 1e9,
            "tflops_per_image": float(features.tflops.iloc[0]),
            "hyperparameters": len(raw),
        }
    )
