"""What makes the platform live: jobs, the landing sensor, the evaluation schedules.

Jobs (names defined once, below):
    rank_new_dataset_job     a dataset's manifest, embedding, FID row and recommendation,
                             in one process (`in_process_executor`: four short steps, so
                             one process start per step would be most of the run)
    finetune_pair_job        one (model, dataset) pair: LoRA, samples, FID edge (`gpu` pool)
    refresh_knowledge_job    imported knowledge, FID edges and their checks, knowledge base,
                             matching graph, Node2Vec+, ranker
    update_recommendation_job  per dataset: the FID edges merged and checked, then the
                             dataset's recommendation (the sequential loop's re-ranking)
    loo_evaluation_job       leave-one-out on the current knowledge
    sparsity_evaluation_job  the sparsity sweep on the current knowledge
    finetune_missing_pairs_job  submits one asset backfill over every (model, dataset) pair
                             with no computed FID edge (its steps queue in the `gpu` pool)
    add_model_job            adds a model to the zoo (config `model`): its partition, then a
                             backfill of its pipeline check, feature row and missing pairs

Dagster cannot run a partitioned job for a partition that does not exist yet, nor build
a schedule from dynamic x dynamic partitions; so the "all missing pairs" and "new model"
jobs are op jobs that submit an asset backfill to the instance, exactly as the sensor
daemon does for `RunRequest.for_asset_graph_subset` (`PartitionBackfill.from_asset_graph_
subset` + `instance.add_backfill`). The backfill daemon then runs the steps in dependency
order, and the UI shows the backfill with its progress.

The landing sensor (`dataset_landing_sensor`) and the optional fine-tuning loop
(`recommended_pairs_sensor`: `MNC_FINETUNE_MODE` top-k | shortlist | sequential,
`MNC_FINETUNE_TOP_K`) are described on their functions; the schedules
(`nightly_loo_schedule`, `weekly_sparsity_schedule`) are written by hand.
"""

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from mnc_assets.datasets import dataset_distance_row, dataset_embedding, dataset_manifest
from mnc_assets.evaluation import leave_one_out_evaluation, sparsity_evaluation
from mnc_assets.knowledge import fid_edges, imported_knowledge, knowledge_base
from mnc_assets.models import model_feature_row, model_pipeline
from mnc_assets.pairs import fid_edge, lora_checkpoint, pair_samples
from mnc_assets.partitions import (
    DATASET,
    MODEL,
    add_dataset_request,
    add_models,
    dataset_partitions,
    pair_key,
    pair_of_key,
    pair_partitions,
)
from mnc_assets.selection import matching_graph, node2vec_embeddings, ranker, recommendation
from mnc_core.ids import InvalidIdError, check_slug
from mnc_core.paths import IMAGE_EXTENSIONS, METADATA_FILE
from mnc_resources import DatasetStore, T2ISettings, Warehouse

# A dataset folder in the landing folder is complete once this (empty) file is in it,
# written after every other file. Without it, a folder counts as complete once its
# listing has not changed between two sensor ticks.
READY_MARKER = "_READY"
LANDING_INTERVAL_SECONDS = 10
FINETUNE_TOP_K_ENV = "MNC_FINETUNE_TOP_K"
FINETUNE_MODE_ENV = "MNC_FINETUNE_MODE"
TOP_K, SHORTLIST, SEQUENTIAL = "top-k", "shortlist", "sequential"
FINETUNE_MODES = (TOP_K, SHORTLIST, SEQUENTIAL)
NIGHTLY_LOO_CRON = "0 2 * * *"  # every night at 02:00
WEEKLY_SPARSITY_CRON = "0 3 * * 0"  # Sundays at 03:00
DIGEST_TAG = "mnc/dataset_digest"
BACKFILL_TAG = "mnc/submitted_by"

MODEL_STAGE = (model_pipeline, model_feature_row)
PAIR_STAGE = (lora_checkpoint, pair_samples, fid_edge)

rank_new_dataset_job = dg.define_asset_job(
    "rank_new_dataset_job",
    selection=dg.AssetSelection.assets(
        dataset_manifest, dataset_embedding, dataset_distance_row, recommendation),
    partitions_def=dataset_partitions,
    executor_def=dg.in_process_executor,
    description="Validate, accept, embed a dataset, add its FID row and rank every model.",
)
finetune_pair_job = dg.define_asset_job(
    "finetune_pair_job", selection=dg.AssetSelection.assets(*PAIR_STAGE),
    partitions_def=pair_partitions,
    description="Fine-tune, sample and score one (model, dataset) pair (gpu pool).",
)
refresh_knowledge_job = dg.define_asset_job(
    "refresh_knowledge_job",
    selection=dg.AssetSelection.assets(imported_knowledge, fid_edges, knowledge_base,
                                       matching_graph, node2vec_embeddings, ranker),
    description="Merge and check the FID edges, then rebuild knowledge, graph and ranker.",
)
update_recommendation_job = dg.define_asset_job(
    "update_recommendation_job",
    selection=dg.AssetSelection.assets(fid_edges, recommendation),
    executor_def=dg.in_process_executor,
    description="Merge the FID edges (checked), then re-rank one dataset with the scores now "
                "known for it (the sequential fine-tuning loop runs it after each new edge).",
)
loo_evaluation_job = dg.define_asset_job(
    "loo_evaluation_job", selection=dg.AssetSelection.assets(leave_one_out_evaluation))
sparsity_evaluation_job = dg.define_asset_job(
    "sparsity_evaluation_job", selection=dg.AssetSelection.assets(sparsity_evaluation))


# ---------------------------------------------------------------- backfill jobs

def computed_pairs(warehouse: Warehouse) -> set[tuple[str, str]]:
    """(model, dataset) pairs with a FID edge measured here (a row in computed_fid_edges)."""
    rows = warehouse.read("SELECT DISTINCT model, dataset FROM computed_fid_edges")
    return set(zip(rows["model"], rows["dataset"], strict=True))


def _pending_pairs(instance: dg.DagsterInstance) -> set[str]:
    """Pair keys of fid_edge targeted by backfills that have not finished yet."""
    from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

    pending = set()
    backfills = instance.get_backfills(
        filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED]))
    for backfill in backfills:
        data = backfill.asset_backfill_data
        subsets = data.target_subset.partitions_subsets_by_asset_key if data else {}
        if fid_edge.key in subsets:
            pending.update(str(k) for k in subsets[fid_edge.key].get_partition_keys())
    return pending


def missing_pairs(instance: dg.DagsterInstance, warehouse: Warehouse,
                  models: Iterable[str] | None = None) -> list[dg.MultiPartitionKey]:
    """Pair keys (of `models`, default all) with no computed edge and no pending backfill."""
    models = list(instance.get_dynamic_partitions(MODEL) if models is None else models)
    done, pending = computed_pairs(warehouse), _pending_pairs(instance)
    return [pair_key(m, d) for m in models for d in instance.get_dynamic_partitions(DATASET)
            if (m, d) not in done and str(pair_key(m, d)) not in pending]


def submit_backfill(context: dg.OpExecutionContext,
                    partitions: Mapping[dg.AssetsDefinition, list[str]], title: str) -> str | None:
    """One asset backfill over `partitions` (what the UI's 'materialize' would launch).

    The subset is built from each asset's own partitions definition, so it needs no
    repository on the step context (an in-process test run has none).
    """
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    subsets = {asset.key: asset.partitions_def.empty_subset().with_partition_keys(keys)
               for asset, keys in partitions.items() if keys}
    if not subsets:
        return None
    backfill_id = make_new_backfill_id()
    context.instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
        backfill_id=backfill_id, backfill_timestamp=get_current_timestamp(),
        tags={BACKFILL_TAG: context.job_name}, dynamic_partitions_store=context.instance,
        asset_graph_subset=AssetGraphSubset(partitions_subsets_by_asset_key=subsets),
        title=title, description=None, run_config=None))
    return backfill_id


def _report(context: dg.OpExecutionContext, backfill_id: str | None,
            pairs: list[dg.MultiPartitionKey]) -> dg.Output:
    shown = ", ".join(str(p) for p in pairs[:20]) + (" ..." if len(pairs) > 20 else "")
    context.log.info(f"backfill {backfill_id}: {len(pairs)} pair(s) {shown}" if backfill_id
                     else "nothing to submit: every pair has a computed edge or is pending")
    return dg.Output(backfill_id, metadata={"backfill_id": backfill_id or "none",
                                            "pairs": len(pairs), "pair_keys": shown or "none"})


@dg.op(description="Submit a backfill over every pair without a computed FID edge.")
def submit_missing_pairs(context: dg.OpExecutionContext, warehouse: Warehouse) -> dg.Output:
    pairs = missing_pairs(context.instance, warehouse)
    keys = [str(p) for p in pairs]
    backfill_id = submit_backfill(context, {a: keys for a in PAIR_STAGE},
                                  f"fine-tune and score {len(keys)} missing pair(s)")
    return _report(context, backfill_id, pairs)


@dg.job(description="Fine-tune and score every missing (model, dataset) pair (gpu pool).")
def finetune_missing_pairs_job() -> None:
    submit_missing_pairs()


class AddModelConfig(dg.Config):
    """The model to add: its id (a slug) is its pipeline folder's name in the model store."""

    model: str


@dg.op(description="Add a model partition, then backfill its features and missing pairs.")
def add_model_to_zoo(context: dg.OpExecutionContext, config: AddModelConfig,
                     warehouse: Warehouse) -> dg.Output:
    model = config.model
    try:
        new = add_models(context.instance, [model])
    except InvalidIdError as err:
        raise dg.Failure(str(err)) from err
    context.log.info(f"model {model!r}: " + ("partition added" if new else "already known"))
    pairs = missing_pairs(context.instance, warehouse, [model])
    keys = {a: [model] for a in MODEL_STAGE} | {a: [str(p) for p in pairs] for a in PAIR_STAGE}
    backfill_id = submit_backfill(context, keys, f"add model {model} ({len(pairs)} pair(s))")
    return _report(context, backfill_id, pairs)


@dg.job(description="Add a model to the zoo: partition, features and the pairs it lacks.")
def add_model_job() -> None:
    add_model_to_zoo()


# ---------------------------------------------------------------- landing sensor

def listing_signature(folder: Path) -> str:
    """A cheap fingerprint of the folder: every entry's name, size, modification and change
    time (stat only; the change time catches a rewrite that kept size and mtime)."""
    entries = sorted(
        (path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        for path in folder.rglob("*") for stat in [path.lstat()]
    )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def _dataset_files(folder: Path) -> list[Path]:
    """The files that make the dataset version (everything but the marker)."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() != READY_MARKER)


def content_digest(folder: Path) -> str:
    """sha256 over every file's relative name and bytes: one value per dataset version."""
    digest = hashlib.sha256()
    for path in _dataset_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:20]


def marker_is_current(folder: Path) -> bool:
    """The marker is there and no file was written after it (a stale marker does not count).

    Compares inode change times: copy tools may keep a file's modification time (cp -p,
    rsync -t), but writing or copying a file always sets its change time to now.
    """
    marker = folder / READY_MARKER
    if not marker.is_file():
        return False
    written = marker.stat().st_ctime_ns
    return all(p.stat().st_ctime_ns <= written for p in _dataset_files(folder))


def captioned_images(folder: Path) -> int:
    """Distinct metadata.jsonl rows naming an existing image file with a caption (no decoding).

    An upper bound of the pairs `validate_imagefolder` will accept. The sensor does not
    call it: that module imports torch (5-20 s on this machine), paid by every fresh
    code-server process the daemon starts; the manifest step decodes every image.
    """
    names = set()
    text = (folder / METADATA_FILE).read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        name = row.get("file_name") if isinstance(row, dict) else None
        caption = row.get("text") if isinstance(row, dict) else None
        if (isinstance(name, str) and isinstance(caption, str) and caption.strip()
                and Path(name).suffix.lower() in IMAGE_EXTENSIONS and (folder / name).is_file()):
            names.add(name)
    return len(names)


def invalid_reason(folder: Path, min_pairs: int) -> str | None:
    """Why the sensor can already tell the dataset is unusable (None: it looks fine)."""
    if not (folder / METADATA_FILE).is_file():
        return f"no {METADATA_FILE} (an imagefolder needs file_name/text rows)"
    found = captioned_images(folder)
    if found < min_pairs:
        return (f"only {found} captioned images in {METADATA_FILE} (at least {min_pairs} valid "
                "image-caption pairs needed)")
    return None


@dataclass
class Seen:
    """What the cursor remembers of one landing folder between ticks."""

    signature: str
    digest: str | None = None  # content digest of that listing, once computed
    requested: str | None = None  # run key of the last version requested
    invalid: str | None = None  # why the version with `digest` was refused

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def read_cursor(cursor: str | None) -> dict[str, Seen]:
    """The per-folder memory of the landing sensor (empty on the first tick)."""
    folders = json.loads(cursor).get("folders", {}) if cursor else {}
    return {name: Seen(**state) for name, state in folders.items()}


def write_cursor(seen: Mapping[str, Seen]) -> str:
    return json.dumps({"folders": {n: s.to_json() for n, s in sorted(seen.items())}},
                      sort_keys=True)


@dataclass
class Verdict:
    """One folder's outcome in a tick: a run key to request, or why not (a note)."""

    state: Seen
    run_key: str | None = None
    note: str | None = None  # waiting/invalid, for the tick's skip reason
    warning: str | None = None  # newly found problem: logged once per version


def judge_folder(folder: Path, before: Seen | None, min_pairs: int) -> Verdict:
    """Decide about one landing folder from what it holds now and the previous tick."""
    name, signature = folder.name, listing_signature(folder)
    unchanged = before is not None and before.signature == signature
    kept = before or Seen(signature)
    try:
        check_slug(name, f"landing folder {folder}")
    except InvalidIdError as err:
        state = Seen(signature, invalid=str(err))
        return Verdict(state, note=f"{name}: not a slug",
                       warning=None if unchanged and before.invalid else str(err))
    if not (marker_is_current(folder) or unchanged):
        return Verdict(Seen(signature, requested=kept.requested),
                       note=f"{name}: incomplete (no {READY_MARKER}, listing still changing)")
    digest = kept.digest if unchanged and kept.digest else content_digest(folder)
    state = Seen(signature, digest, kept.requested)
    run_key = f"{name}:{digest}"
    if kept.requested == run_key:
        return Verdict(state)
    if kept.invalid and kept.digest == digest:
        state.invalid = kept.invalid
        return Verdict(state, note=f"{name}: invalid ({kept.invalid})")
    reason = invalid_reason(folder, min_pairs)
    if reason:
        state.invalid = reason
        return Verdict(state, note=f"{name}: invalid ({reason})",
                       warning=f"dataset {name!r} in {folder.parent} is not usable: {reason}")
    state.requested = run_key
    return Verdict(state, run_key=run_key)


def _landing_folders(landing: Path) -> list[Path]:
    """Sub-folders of the landing folder; hidden ones (copies being staged) are not looked at."""
    if not landing.is_dir():
        return []
    return sorted(p for p in landing.iterdir() if p.is_dir() and not p.name.startswith("."))


@dg.sensor(
    name="dataset_landing_sensor", jobs=[rank_new_dataset_job],
    minimum_interval_seconds=LANDING_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def dataset_landing_sensor(context: dg.SensorEvaluationContext, dataset_store: DatasetStore,
                           t2i: T2ISettings) -> dg.SensorResult:
    """Ranks every dataset that lands, once per version, without anyone clicking.

    Watches `dataset_store.landing`. A folder is taken when complete: it holds
    `READY_MARKER` (newer than every other file), or its listing is the same as at the
    previous tick. Then, in one tick, its `dataset` partition is added and
    `rank_new_dataset_job` requested with run key `<dataset>:<content digest>`: Dagster
    never runs a run key twice, so an unchanged folder is not ranked again and a changed
    one is. Digests are cached in the cursor by listing signature (no re-hashing of quiet
    folders). A non-slug name or a dataset that is visibly unusable is logged as a warning
    with the reason (tick log, once per version) and skipped; the other folders proceed.
    RUNNING by default, so `dagster dev` (webserver + daemon) picks datasets up by itself.
    """
    seen = read_cursor(context.cursor)
    verdicts = {f.name: judge_folder(f, seen.get(f.name), t2i.min_pairs)
                for f in _landing_folders(Path(dataset_store.landing))}
    for verdict in verdicts.values():
        if verdict.warning:
            context.log.warning(verdict.warning)
    cursor = write_cursor({name: v.state for name, v in verdicts.items()})
    requested = [n for n, v in verdicts.items() if v.run_key]
    if not requested:
        notes = "; ".join(v.note for v in verdicts.values() if v.note)
        return dg.SensorResult(skip_reason=f"no new complete dataset. {notes}".strip(),
                               cursor=cursor)
    known = set(context.instance.get_dynamic_partitions(DATASET))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=verdicts[n].run_key, job_name=rank_new_dataset_job.name,
                                    partition_key=n, tags={DIGEST_TAG: verdicts[n].state.digest})
                      for n in requested],
        dynamic_partitions_requests=[add_dataset_request(n) for n in requested if n not in known],
        cursor=cursor,
    )


# ---------------------------------------------------------------- fine-tuning loop

def finetune_top_k(env: Mapping[str, str] | None = None) -> int:
    """`MNC_FINETUNE_TOP_K`: how many recommended models to fine-tune per new dataset (0: off;
    in the shortlist and sequential modes a cap, 0 = none)."""
    env = os.environ if env is None else env
    value = env.get(FINETUNE_TOP_K_ENV, "0") or "0"
    if not value.isdigit():
        raise ValueError(f"{FINETUNE_TOP_K_ENV}={value!r} is not a whole number >= 0")
    return int(value)


def finetune_mode(env: Mapping[str, str] | None = None) -> str:
    """`MNC_FINETUNE_MODE`: which recommended pairs the loop fine-tunes (default top-k)."""
    env = os.environ if env is None else env
    value = env.get(FINETUNE_MODE_ENV, "") or TOP_K
    if value not in FINETUNE_MODES:
        raise ValueError(f"{FINETUNE_MODE_ENV}={value!r} is not one of "
                         f"{', '.join(FINETUNE_MODES)}")
    return value


def _recommended(warehouse: Warehouse, dataset: str):
    return warehouse.read(
        "SELECT model, rank, in_shortlist, next_order, stop FROM recommendations "
        "WHERE dataset = ? ORDER BY rank", [dataset])


def _in_zoo(instance: dg.DagsterInstance, models: Iterable[str]) -> list[str]:
    """`models` (in order) that are zoo models (imported-only ones have no pipeline here)."""
    zoo = set(instance.get_dynamic_partitions(MODEL))
    return [m for m in models if m in zoo]


def _untried(warehouse: Warehouse, dataset: str, models: Iterable[str]) -> list[str]:
    """`models` (in order) without a computed edge on `dataset`."""
    done = computed_pairs(warehouse)
    return [m for m in models if (m, dataset) not in done]


def top_k_pairs(instance: dg.DagsterInstance, warehouse: Warehouse, dataset: str,
                k: int) -> list[dg.MultiPartitionKey]:
    """The dataset's k best recommended zoo models that have no computed edge yet."""
    best = _in_zoo(instance, _recommended(warehouse, dataset)["model"])[:k]
    return [pair_key(m, dataset) for m in _untried(warehouse, dataset, best)]


def shortlist_pairs(instance: dg.DagsterInstance, warehouse: Warehouse, dataset: str,
                    cap: int) -> tuple[list[dg.MultiPartitionKey], str | None]:
    """The shortlisted zoo models without a computed edge, best first, at most `cap`
    (0: all), and why there are none when the recommendation has no shortlist."""
    rows = _recommended(warehouse, dataset)
    if rows.empty or rows["in_shortlist"].isna().all():
        return [], f"{dataset}: no shortlist (no near_best_calibration when it was ranked)"
    shortlisted = rows.loc[rows["in_shortlist"].fillna(False).astype(bool), "model"]
    chosen = _untried(warehouse, dataset, _in_zoo(instance, shortlisted))
    return [pair_key(m, dataset) for m in (chosen[:cap] if cap else chosen)], None


def sequential_pair(instance: dg.DagsterInstance, warehouse: Warehouse, dataset: str,
                    cap: int) -> tuple[list[dg.MultiPartitionKey], str | None]:
    """The recommendation's next pair (at most one), or why none: it says stop, every
    model is tried, or `cap` (> 0) fine-tunings of the dataset are measured here."""
    rows = _recommended(warehouse, dataset)
    if rows.empty:
        return [], f"{dataset}: no recommendation rows"
    if rows["stop"].fillna(False).astype(bool).any():
        return [], f"{dataset}: the recommendation says stop"
    measured = sum(1 for _, d in computed_pairs(warehouse) if d == dataset)
    if cap and measured >= cap:
        return [], f"{dataset}: {measured} fine-tuning(s) measured, {FINETUNE_TOP_K_ENV}={cap}"
    ordered = rows.dropna(subset=["next_order"]).sort_values("next_order")["model"]
    untried = _untried(warehouse, dataset, _in_zoo(instance, ordered))
    if not untried:
        return [], f"{dataset}: no untried zoo model left"
    return [pair_key(untried[0], dataset)], None


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey,
                       partitions: list[str]) -> int | None:
    if not partitions:
        return None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=1).records
    return records[0].storage_id if records else None


def stale_recommendations(instance: dg.DagsterInstance,
                          datasets: Iterable[str]) -> dict[str, int]:
    """Datasets whose latest recommendation is older than their latest FID edge: dataset ->
    that edge's storage id (datasets never recommended are left to the landing sensor)."""
    zoo = instance.get_dynamic_partitions(MODEL)
    stale = {}
    for dataset in sorted(set(datasets)):
        recommended = _latest_storage_id(instance, recommendation.key, [dataset])
        edge = _latest_storage_id(instance, fid_edge.key,
                                  [str(pair_key(m, dataset)) for m in zoo])
        if recommended is not None and edge is not None and edge > recommended:
            stale[dataset] = edge
    return stale


def _read_loop_cursor(cursor: str | None) -> dict[str, int]:
    """{"recommendation": storage id, "fid_edge": storage id}; an older version's cursor
    was the recommendation's storage id alone."""
    if not cursor:
        return {}
    if cursor.isdigit():
        return {"recommendation": int(cursor)}
    return {k: int(v) for k, v in json.loads(cursor).items()}


def _new_records(instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None):
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after),
        limit=100, ascending=True).records


def recommended_pairs_sensor(top_k: int, mode: str = TOP_K) -> dg.SensorDefinition:
    """The paper's 5.3 loop: after a recommendation, fine-tune what it recommends.

    `mode` (`MNC_FINETUNE_MODE`): `top-k` its k best models (k = `MNC_FINETUNE_TOP_K`,
    0 = off); `shortlist` the models of its calibrated shortlist (at most k when k > 0);
    `sequential` only its next model, one at a time (at most k per dataset when k > 0).
    """
    running = mode != TOP_K or top_k > 0
    status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED

    @dg.sensor(name="recommended_pairs_sensor", jobs=[finetune_pair_job,
                                                     update_recommendation_job],
               default_status=status, minimum_interval_seconds=LANDING_INTERVAL_SECONDS)
    def _sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
        """Requests finetune_pair_job for what each new recommendation recommends
        (MNC_FINETUNE_MODE: top-k, shortlist or sequential). In sequential mode it also
        re-ranks a dataset once one of its FID edges lands (update_recommendation_job:
        the edges merged and checked, then the recommendation), so the next pick is made
        on the revealed score; it stops when the recommendation says stop."""
        if not running:
            return dg.SkipReason(f"{FINETUNE_TOP_K_ENV} is 0: top-k fine-tuning is off")
        cursor = _read_loop_cursor(context.cursor)
        records = _new_records(context.instance, recommendation.key,
                               cursor.get("recommendation"))
        latest = {r.partition_key: r for r in records if r.partition_key}  # newest per dataset
        requests, notes, stale = [], [], {}
        if mode == SEQUENTIAL:
            edges = _new_records(context.instance, fid_edge.key, cursor.get("fid_edge"))
            if edges:
                cursor["fid_edge"] = edges[-1].storage_id
            stale = stale_recommendations(
                context.instance, [pair_of_key(r.partition_key)[1] for r in edges
                                   if r.partition_key] + list(latest))
            requests += [dg.RunRequest(run_key=f"{d}:after-edge-{edge}",
                                       job_name=update_recommendation_job.name,
                                       partition_key=d) for d, edge in stale.items()]
        for dataset, record in sorted(latest.items()):
            if dataset in stale:  # re-ranked first: the next pick waits for the new edge
                continue
            if mode == TOP_K:
                pairs, note = top_k_pairs(context.instance, warehouse, dataset, top_k), None
            elif mode == SHORTLIST:
                pairs, note = shortlist_pairs(context.instance, warehouse, dataset, top_k)
            else:
                pairs, note = sequential_pair(context.instance, warehouse, dataset, top_k)
            notes += [note] if note else []
            requests += [dg.RunRequest(run_key=f"{pair}:{record.storage_id}",
                                       job_name=finetune_pair_job.name, partition_key=pair)
                         for pair in pairs]
        if records:
            cursor["recommendation"] = records[-1].storage_id
        for note in notes:
            context.log.info(note)
        if not requests and notes:
            return dg.SensorResult(skip_reason="; ".join(notes),
                                   cursor=json.dumps(cursor, sort_keys=True))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return _sensor


# ---------------------------------------------------------------- schedules

def _if_knowledge(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Evaluate only once a knowledge base exists (before that the run could only fail)."""
    if context.instance.get_latest_materialization_event(knowledge_base.key) is None:
        return dg.SkipReason("no knowledge_base materialised yet: nothing to evaluate")
    return dg.RunRequest()


@dg.schedule(name="nightly_loo_schedule", job=loo_evaluation_job, cron_schedule=NIGHTLY_LOO_CRON,
             default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_loo_schedule(context: dg.ScheduleEvaluationContext):
    """Leave-one-out every night, appended to the evaluation history (the UI's trend)."""
    return _if_knowledge(context)


@dg.schedule(name="weekly_sparsity_schedule", job=sparsity_evaluation_job,
             cron_schedule=WEEKLY_SPARSITY_CRON, default_status=dg.DefaultScheduleStatus.RUNNING)
def weekly_sparsity_schedule(context: dg.ScheduleEvaluationContext):
    """The sparsity sweep once a week (it is the long one), appended to the history."""
    return _if_knowledge(context)


JOBS = (rank_new_dataset_job, finetune_pair_job, refresh_knowledge_job, update_recommendation_job,
        loo_evaluation_job, sparsity_evaluation_job, finetune_missing_pairs_job, add_model_job)
SCHEDULES = (nightly_loo_schedule, weekly_sparsity_schedule)


def sensors(env: Mapping[str, str] | None = None) -> list[dg.SensorDefinition]:
    """The platform's sensors, the fine-tuning loop configured from `env`."""
    return [dataset_landing_sensor,
            recommended_pairs_sensor(finetune_top_k(env), finetune_mode(env))]
