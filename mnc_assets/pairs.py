"""Per-(model, dataset) assets: LoRA checkpoint, samples, and the model-dataset FID edge.

Training and sampling hold the GPU: they run in the `gpu` concurrency pool (one step
per GPU at a time) and, under Kubernetes, request an `nvidia.com/gpu` (`GPU_OP_TAGS`).
Scoring only embeds a few images with CLIP and writes one warehouse row; it opens the
warehouse after the GPU work of the pair is done, never during it.
"""


import time

import dagster as dg
import pandas as pd

from mnc_assets.datasets import dataset_manifest, load_accepted
from mnc_assets.executors import GPU_OP_TAGS, GPU_POOL
from mnc_assets.metadata import lines, plot_markdown, table_metadata
from mnc_assets.models import model_pipeline
from mnc_assets.partitions import pair_of, pair_partitions
from mnc_core.paths import SAMPLE_VARIANTS
from mnc_resources import ArtifactStore, ClipSettings, GpuResource, T2ISettings, Warehouse

GROUP = "fine_tuning"
GPU_HOURS = "gpu_hours"


def _gpu_step(**kwargs):
    """`dg.asset` for a step that holds the GPU."""
    return dg.asset(
        partitions_def=pair_partitions, group_name=GROUP, pool=GPU_POOL, op_tags=GPU_OP_TAGS,
        **kwargs,
    )


@_gpu_step(deps=[model_pipeline, dataset_manifest], kinds={"pytorch", "safetensors"})
def lora_checkpoint(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, gpu: GpuResource,
    t2i: T2ISettings,
):
    """LoRA fine-tuning of the model on the dataset's training split (resumes checkpoints)."""
    from mnc_core.t2i.lora_training import train_lora

    model, dataset = pair_of(context)
    layout = artifacts.layout
    config = t2i.lora_config()
    every = max(1, config.max_steps // 10)

    def progress(step: int, loss: float) -> None:
        if step % every == 0 or step == config.max_steps:
            context.log.info(f"{model} on {dataset}: step {step}/{config.max_steps} "
                             f"loss {loss:.4f}")

    started = time.perf_counter()
    result = train_lora(
        layout.model_dir(model), load_accepted(artifacts, t2i, dataset),
        layout.lora_dir(model, dataset), config, device=gpu.prepare(), dtype=gpu.torch_dtype(),
        progress=progress, cache_dir=layout.cache_dir(model, dataset),
    )
    metadata = {
        "path": dg.MetadataValue.path(str(result.lora_dir)),
        "family": result.family,
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        GPU_HOURS: (time.perf_counter() - started) / 3600,
    }
    if result.losses:
        metadata["final_loss"] = float(result.losses[-1])
        curve = pd.DataFrame({"loss": result.losses},
                             index=range(result.resumed_from + 1, result.steps + 1))
        metadata["loss_curve"] = dg.MetadataValue.md(
            plot_markdown(lines(curve, "step", "loss"), f"{model} on {dataset}", (4, 2.5))
        )
    return dg.MaterializeResult(metadata=metadata)


@_gpu_step(deps=[lora_checkpoint], kinds={"pytorch"})
def pair_samples(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, gpu: GpuResource,
    t2i: T2ISettings,
):
    """Images of the validation captions, with the LoRA and with the base model."""
    from mnc_core.t2i.lora_training import FINAL_DIR
    from mnc_core.t2i.sampling import sample_validation

    model, dataset = pair_of(context)
    layout, data = artifacts.layout, load_accepted(artifacts, t2i, dataset)
    started = time.perf_counter()
    device, dtype = gpu.prepare(), gpu.torch_dtype()
    counts = {}
    for variant, lora_dir in (("lora", layout.lora_dir(model, dataset) / FINAL_DIR),
                              ("base", None)):
        paths = sample_validation(
            layout, model, dataset, data, variant, t2i.sampling_config(), lora_dir=lora_dir,
            device=device, dtype=dtype,
        )
        counts[variant] = len(paths)
    return dg.MaterializeResult(
        metadata={
            "lora_images": counts["lora"],
            "base_images": counts["base"],
            "path": dg.MetadataValue.path(str(layout.samples_dir(model, dataset, "lora").parent)),
            GPU_HOURS: (time.perf_counter() - started) / 3600,
        }
    )


def _gpu_hours(context: dg.AssetExecutionContext, *assets: dg.AssetsDefinition) -> float | None:
    """GPU hours the pair's training and sampling recorded (None when unknown)."""
    total = 0.0
    for asset in assets:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset.key, asset_partitions=[context.partition_key]),
            limit=1,
        ).records
        event = records[0].asset_materialization if records else None
        value = event.metadata.get(GPU_HOURS) if event else None
        if value is None:
            return None
        total += float(value.value)
    return total


@dg.asset(partitions_def=pair_partitions, group_name=GROUP, deps=[pair_samples],
          kinds={"duckdb"})
def fid_edge(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, clip: ClipSettings,
    t2i: T2ISettings, warehouse: Warehouse,
):
    """CLIP-FID of the LoRA samples against the real validation images (and of the base's)."""
    from mnc_core.t2i.quality import clip_fid, cmmd, kid

    model, dataset = pair_of(context)
    layout, embedder = artifacts.layout, clip.load()
    data = load_accepted(artifacts, t2i, dataset)
    references = embedder.embed_images([p.path for p in data.val], batch_size=clip.batch_size)
    feats = {
        v: embedder.embed_images(sorted(layout.samples_dir(model, dataset, v).glob("*.png")),
                                 batch_size=clip.batch_size)
        for v in SAMPLE_VARIANTS
    }
    extra = t2i.extra_metrics
    row = pd.DataFrame({
        "model": [model], "dataset": [dataset],
        "clip_fid": [clip_fid(feats["lora"], references)],
        "clip_fid_before": [clip_fid(feats["base"], references)],
        "kid": [kid(feats["lora"], references) if extra else None],
        "cmmd": [cmmd(feats["lora"], references) if extra else None],
        "n_samples": [len(feats["lora"])],
        "gpu_hours": [_gpu_hours(context, lora_checkpoint, pair_samples)],
        "computed_at": [pd.Timestamp.now()],
    })
    warehouse.replace_partition("computed_fid_edges", {"model": model, "dataset": dataset}, row)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(row),
            "clip_fid": float(row["clip_fid"].iloc[0]),
            "clip_fid_before": float(row["clip_fid_before"].iloc[0]),
        }
    )
