"""Per-dataset assets: the validated manifest, CLIP embeddings, and the FID row.

A dataset arrives in the dataset store's landing folder. Its manifest step validates
it (bad files are listed and skipped, never touched), then copies the folder into the
accepted folder, which is what every later step reads: a dataset re-landed later does
not change data under a running pipeline. A dataset put straight into the accepted
folder (the demo, tests) is validated in place.
"""


import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from mnc_assets.metadata import markdown_table, table_metadata
from mnc_assets.partitions import dataset_partitions
from mnc_resources import ArtifactStore, ClipSettings, DatasetStore, T2ISettings, Warehouse

GROUP = "datasets"


def load_accepted(artifacts: ArtifactStore, t2i: T2ISettings, dataset: str):
    """The accepted dataset, validated and split the same way by every step."""
    from mnc_core.t2i.datasets import load_imagefolder

    return load_imagefolder(
        artifacts.layout.dataset_dir(dataset), min_pairs=t2i.min_pairs,
        val_fraction=t2i.val_fraction,
    )


def _accept(landing: Path, accepted: Path) -> None:
    """Copy the landed folder into the accepted folder (staged, then swapped in)."""
    from mnc_core.folders import swap_in

    accepted.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{accepted.name}.", dir=accepted.parent))
    try:
        shutil.copytree(landing, staging, dirs_exist_ok=True, symlinks=True)
        swap_in(staging, accepted)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dg.asset(partitions_def=dataset_partitions, group_name=GROUP, kinds={"duckdb"})
def dataset_manifest(
    context: dg.AssetExecutionContext,
    dataset_store: DatasetStore,
    artifacts: ArtifactStore,
    t2i: T2ISettings,
    warehouse: Warehouse,
):
    """Every valid image-caption pair of the dataset and its train/validation split."""
    from mnc_core.t2i.datasets import load_imagefolder

    dataset = context.partition_key
    landing, accepted = dataset_store.landing_dir(dataset), artifacts.layout.dataset_dir(dataset)
    source = landing if landing.is_dir() else accepted
    checked = load_imagefolder(source, min_pairs=t2i.min_pairs, val_fraction=t2i.val_fraction)
    if source == landing:
        _accept(landing, accepted)
        checked = load_accepted(artifacts, t2i, dataset)
    files = pd.DataFrame(
        [(dataset, p.path.relative_to(accepted).as_posix(), p.caption, split, p.sha256)
         for split, pairs in (("train", checked.train), ("val", checked.val)) for p in pairs],
        columns=["dataset", "file_name", "caption", "split", "sha256"],
    )
    skipped = pd.DataFrame(
        [(dataset, issue.file, issue.reason) for issue in checked.report.skipped],
        columns=["dataset", "file_name", "reason"],
    )
    warehouse.replace_partition("dataset_files", {"dataset": dataset}, files)
    warehouse.replace_partition("dataset_skipped_files", {"dataset": dataset}, skipped)
    if len(skipped):
        context.log.warning(f"{dataset}: {len(skipped)} file(s) skipped (listed in metadata)")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(files),
            "source": dg.MetadataValue.path(str(source)),
            "train": len(checked.train),
            "val": len(checked.val),
            "skipped": len(skipped),
            "skipped_files": dg.MetadataValue.md(
                markdown_table(skipped[["file_name", "reason"]]) if len(skipped) else "none"
            ),
        }
    )


@dg.asset(
    partitions_def=dataset_partitions, group_name=GROUP, deps=[dataset_manifest],
    kinds={"pytorch"},
)
def dataset_embedding(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStore,
    clip: ClipSettings,
    warehouse: Warehouse,
):
    """CLIP image embeddings, their Gaussian statistics, and the mean (the dataset feature)."""
    from mnc_core.t2i.clip_embed import embed_dataset

    dataset = context.partition_key
    embedder = clip.load()
    layout = artifacts.layout
    result = embed_dataset(
        embedder, layout.dataset_dir(dataset), layout.embeddings_dir(embedder.slug, dataset),
        batch_size=clip.batch_size,
    )
    row = pd.DataFrame({
        "dataset": [dataset], "clip": [embedder.name], "n_images": [len(result.files)],
        "mean_embedding": [result.mean.astype(float).tolist()],
        "computed_at": [pd.Timestamp.now()],
    })
    warehouse.replace_partition("dataset_features", {"dataset": dataset}, row)
    return dg.MaterializeResult(
        metadata={
            "images": len(result.files),
            "embedding_dim": int(result.mean.shape[0]),
            "clip": embedder.name,
            "from_cache": result.cache_hit,
            "path": dg.MetadataValue.path(str(layout.embeddings_dir(embedder.slug, dataset))),
        }
    )


@dg.asset(
    partitions_def=dataset_partitions, group_name=GROUP, deps=[dataset_embedding],
    kinds={"duckdb"},
)
def dataset_distance_row(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStore,
    clip: ClipSettings,
    warehouse: Warehouse,
):
    """FID between this dataset and every other embedded dataset: n new edges, not n x n."""
    from mnc_core.t2i.clip_embed import dataset_fid, embed_dataset

    dataset = context.partition_key
    embedder, layout = clip.load(), artifacts.layout
    others = warehouse.read(
        "SELECT dataset FROM dataset_features WHERE dataset <> ? AND clip = ? ORDER BY dataset",
        [dataset, embedder.name],
    )["dataset"].tolist()

    def embedding(name: str):  # from the embedding cache: nothing is re-embedded
        return embed_dataset(embedder, layout.dataset_dir(name),
                             layout.embeddings_dir(embedder.slug, name))

    mine = embedding(dataset)
    rows = pd.DataFrame({
        "dataset": dataset, "other": others,
        "distance": [dataset_fid(mine, embedding(o)) for o in others],
        "computed_at": pd.Timestamp.now(),
    }, columns=["dataset", "other", "distance", "computed_at"])
    warehouse.replace_partition("dataset_distances", {"dataset": dataset}, rows)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(rows),
            "nearest": dg.MetadataValue.md(
                markdown_table(rows.sort_values("distance")[["other", "distance"]], 5)
                if len(rows) else "no other dataset yet"
            ),
        }
    )
