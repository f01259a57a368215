"""Import a TransferGraph experiment folder (Li et al., ICDE 2024) as a knowledge base.

Written against the layout, not one folder (text or image experiments alike):

    records.csv                    model, finetuned_dataset, <score column>,
                                   [peft_method], [train_runtime]: one row per run
    model_config_dataset.csv       model, [architectures], [model_type], [dataset],
                                   numeric metadata (number_of_parameters, ...)
    target_dataset_features.csv    finetune_dataset, size, number_of_classes
    corr_domain_similarity_*.csv   square dataset x dataset distance matrix (optional)
    transferability_score_records.csv  model, target_dataset, metric, score: cheap
                                   proxies (LogME, Reg-H-Score) measured on the target
                                   before fine-tuning (optional, read on request)

Mapping (documented in docs/knowledge-base.md):
- One fine-tuning method per KB (`peft`): `full` keeps runs with an empty
  `peft_method`, `lora` keeps `lora`; other labels are dropped and counted.
- Runs whose dataset is not in target_dataset_features.csv are junk labels
  (e.g. "0.1", "none", "lora") and are dropped; so are runs without a score.
- Repeated runs of one (model, dataset) are averaged (score and cost).
- Ids are `slugify`d; `ids.csv` in the KB maps them back to the original names.
- Only models and datasets with at least one kept run enter the KB.
- Model features: one-hot architecture, model type and source dataset, numeric
  columns log1p-scaled and standardised; models without a metadata row are kept
  with `metadata_missing = 1` and missing-value indicators (no NaN).
- Dataset features: log size and number of classes, standardised.
- Distances: from the similarity matrix, for pairs of KB datasets; the two
  directions are averaged. Similarity labels are matched to dataset names
  exactly, else through an alias key (`glue_cola` ~ `glue/cola`); when two
  labels land on one dataset, the exact name wins, then the first in the file.
- cost = train_runtime / 3600 (GPU hours); a missing runtime leaves the cost
  unknown, and so does a negative or infinite one (counted).
- score_before: empty by default; with `score_before="logme"` (or `"reg-h-score"`)
  it is that transferability score of the pair, a proxy computed on the target
  *before* any fine-tuning (the analogue of the score before fine-tuning, so
  legitimately known for a new dataset). Repeated rows are averaged; rows of
  datasets or models without a kept run are dropped and counted.
- Auxiliary edges (on by default): the runs of the other method (`lora` for a
  `full` KB and vice versa) become `aux_edges` with recipe = that method's name,
  through the same filters and averaging, kept only for models and datasets of
  the KB (the engine learns from them as extra tasks, never predicts them).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mnc_core.kb.importers.common import (
    DropCounter,
    ImportInputError,
    ImportResult,
    NameSource,
    average_duplicates,
    beyond_limit,
    feature_column,
    id_map_table,
    numeric_column,
    one_hot,
    read_table,
    scaled_numbers,
    scores_in_range,
    slug_map,
)
from mnc_core.kb.schema import AUX_EDGE_COLUMNS, DISTANCE_COLUMNS, KnowledgeBase
from mnc_core.kb.store import VALUE_LIMIT
from mnc_core.textfiles import is_number

log = logging.getLogger(__name__)

RECORDS_CSV = "records.csv"
MODEL_CONFIG_CSV = "model_config_dataset.csv"
TARGET_FEATURES_CSV = "target_dataset_features.csv"
SIMILARITY_GLOB = "corr_domain_similarity_*.csv"
PEFT_LABELS = {"full": "", "lora": "lora"}
MODEL_CATEGORICAL = {"architectures": "arch", "model_type": "type", "dataset": "source"}
SECONDS_PER_HOUR = 3600.0
TRANSFERABILITY_CSV = "transferability_score_records.csv"
TRANSFERABILITY_METRICS = {
    "logme": "TransferabilityMethod.LOG_ME",
    "reg-h-score": "TransferabilityMethod.REG_H_SCORE",
}


def import_transfergraph(
    src_dir: str | Path,
    *,
    peft: str = "full",
    score_column: str = "eval_accuracy",
    similarity_file: str | None = None,
    score_before: str | None = None,
    auxiliary: bool = True,
) -> ImportResult:
    """Read a TransferGraph folder into a `KnowledgeBase` (accuracy, higher is better).

    `score_before` names a transferability score (`logme`, `reg-h-score`) to import
    as the score before fine-tuning; None leaves it unknown. `auxiliary` keeps the
    other method's runs of the same models and datasets as `aux_edges` (recipe =
    that method); off, they are dropped and counted as before.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise ImportInputError(f"{src}: TransferGraph folder not found")
    if peft not in PEFT_LABELS:
        raise ImportInputError(f"peft must be one of {', '.join(PEFT_LABELS)}, got {peft!r}")
    if score_before is not None and score_before not in TRANSFERABILITY_METRICS:
        raise ImportInputError(
            f"score_before must be one of {', '.join(TRANSFERABILITY_METRICS)}, "
            f"got {score_before!r}"
        )
    drops = DropCounter()
    targets = _target_table(src / TARGET_FEATURES_CSV, drops)
    records = _records(src / RECORDS_CSV, score_column, peft, drops)
    edges = _primary_edges(records, src / RECORDS_CSV, score_column, peft, targets, drops)
    edges = _with_score_before(src, edges, score_before, list(targets.index), drops)
    recipe = _other_method(peft) if auxiliary else None
    aux = _aux_edges(
        records, src / RECORDS_CSV, score_column, (peft, recipe), targets, edges, drops
    )
    model_names = sorted(edges["model"].unique())
    dataset_names = sorted(edges["dataset"].unique())
    model_slugs = slug_map(model_names, _model_source(src / RECORDS_CSV, records))
    dataset_slugs = slug_map(dataset_names, _dataset_source(src / TARGET_FEATURES_CSV, targets))
    model_features = _model_features(src / MODEL_CONFIG_CSV, model_names, drops)
    dataset_features = _dataset_features(targets.loc[dataset_names])
    sim_file = _similarity_file(src, similarity_file)
    distances = _distances(sim_file, dataset_names, drops) if sim_file else _no_distances()
    kb = KnowledgeBase(
        edges=_slug_edges(edges, model_slugs, dataset_slugs),
        aux_edges=_slug_aux_edges(aux, model_slugs, dataset_slugs),
        metric=score_column,
        higher_is_better=True,
        model_features=_slug_index(model_features, model_slugs, "model"),
        dataset_features=_slug_index(dataset_features, dataset_slugs, "dataset"),
        dataset_distances=_slug_distances(distances, dataset_slugs),
        description=_description(src, peft, score_column, sim_file, score_before)
        + _aux_description(recipe, len(aux)),
        synthetic=False,
        extra={
            "importer": "transfergraph",
            "peft": peft,
            "score_column": score_column,
            "similarity_file": sim_file.name if sim_file else None,
            "score_before": score_before,
            "auxiliary": recipe,
            "dropped_rows": drops.as_dict(),
        },
        source=str(src),
        id_map=id_map_table(model_slugs, dataset_slugs),
    )
    return ImportResult(kb=kb, dropped=drops.as_dict())


def _target_table(file: Path, drops: DropCounter) -> pd.DataFrame:
    """Dataset size and class count by original dataset name (first row of a repeated name).

    Column `row` keeps each name's 0-based data row in the file for error messages.
    """
    table = read_table(file, ("finetune_dataset", "size", "number_of_classes"))
    table["size"] = feature_column(table, "size", file, positive=True)
    table["number_of_classes"] = feature_column(table, "number_of_classes", file, positive=True)
    keep = drops.drop(table["finetune_dataset"].isna(), f"{file.name}: row without a dataset name")
    table = table[keep]
    table["finetune_dataset"] = table["finetune_dataset"].astype(str).str.strip()
    keep = drops.drop(
        table.duplicated("finetune_dataset"), f"{file.name}: repeated dataset row (first kept)"
    )
    table = table[keep].assign(row=table.index[keep])
    return table.set_index("finetune_dataset")[["size", "number_of_classes", "row"]]


def _model_source(file: Path, records: pd.DataFrame) -> NameSource:
    """records.csv's model names (as used: stripped), to trace a name with no slug."""
    return NameSource(file, "model", records["model"].astype(str).str.strip())


def _dataset_source(file: Path, targets: pd.DataFrame) -> NameSource:
    """The target table's dataset names by file row: KB dataset names are exactly these."""
    return NameSource(file, "finetune_dataset", pd.Series(targets.index, index=targets["row"]))


def _records(file: Path, score_column: str, peft: str, drops: DropCounter) -> pd.DataFrame:
    """records.csv runs with a model name and a known method (column `method`: full | lora)."""
    records = read_table(file, ("model", "finetuned_dataset"))
    if score_column not in records.columns:
        present = [c for c in records.columns if "accuracy" in str(c)] or ["none"]
        raise ImportInputError(
            f"{file}: no score column {score_column!r} (accuracy columns present: "
            f"{', '.join(present)}); choose one with --score"
        )
    records = records[drops.drop(records["model"].isna(), "run without a model name")]
    method = _methods(file, records, peft, drops)
    return records[method.notna()].assign(method=method[method.notna()])


def _methods(file: Path, records: pd.DataFrame, peft: str, drops: DropCounter) -> pd.Series:
    """Each run's fine-tuning method; unknown labels become NaN and are dropped and counted."""
    if "peft_method" not in records.columns:
        if peft != "full":
            raise ImportInputError(
                f"{file}: no peft_method column, so every run is full fine-tuning; use --peft full"
            )
        return pd.Series("full", index=records.index)
    label = records["peft_method"].fillna("").astype(str).str.strip().str.lower()
    unknown = ~label.isin(list(PEFT_LABELS.values()))
    values = ", ".join(repr(v) for v in sorted(set(label[unknown])))
    drops.drop(unknown, f"unknown peft_method label ({values})")
    return label.map({text: method for method, text in PEFT_LABELS.items()})


def _other_method(peft: str) -> str:
    """The method whose runs become auxiliary edges (full <-> lora)."""
    return next(method for method in PEFT_LABELS if method != peft)


def _primary_edges(
    records: pd.DataFrame,
    file: Path,
    score_column: str,
    peft: str,
    targets: pd.DataFrame,
    drops: DropCounter,
) -> pd.DataFrame:
    """The KB's edges: the chosen method's kept runs with their cost, repeated runs averaged."""
    runs = _kept_runs(records, file, score_column, peft, list(targets.index), drops)
    if runs.empty:
        raise ImportInputError(
            f"{file}: no run left after filtering (peft={peft}, score={score_column}); "
            f"dropped: {drops.as_dict()}"
        )
    runs["cost"] = _cost_hours(records.loc[runs.index], file, drops)
    runs = runs.reset_index(drop=True)
    return average_duplicates(runs, ["model", "dataset"], drops, "(model, dataset)")


def _aux_edges(
    records: pd.DataFrame,
    file: Path,
    score_column: str,
    methods: tuple[str, str | None],
    targets: pd.DataFrame,
    edges: pd.DataFrame,
    drops: DropCounter,
) -> pd.DataFrame:
    """The other method's runs on the KB's models and datasets, averaged (recipe = method).

    `methods` is (the KB's method, the auxiliary recipe); with the recipe None
    (auxiliary off) the other method's runs are dropped and counted instead. Runs
    go through the same filters as the KB's edges (against every target dataset, so
    a real dataset without a kept primary run is not mistaken for a junk label),
    then only the KB's models and datasets are kept: the engine has no features
    for the others.
    """
    peft, recipe = methods
    if recipe is None:
        other = records["method"] != peft
        drops.drop(other, f"runs of the other fine-tuning method (kept: {peft})")
        return pd.DataFrame(columns=list(AUX_EDGE_COLUMNS))
    what = f"auxiliary {recipe}"
    runs = _kept_runs(records, file, score_column, recipe, list(targets.index), drops, what)
    outside = ~runs["model"].isin(set(edges["model"])) | ~runs["dataset"].isin(
        set(edges["dataset"])
    )
    reason = f"{what} run of a model or dataset without a kept {peft} run (not in the KB)"
    runs = runs[drops.drop(outside, reason)].reset_index(drop=True)
    runs = average_duplicates(runs, ["model", "dataset"], drops, f"{what} (model, dataset)")
    return runs.assign(recipe=recipe)[list(AUX_EDGE_COLUMNS)]


def _kept_runs(
    records: pd.DataFrame,
    file: Path,
    score_column: str,
    method: str,
    datasets: list[str],
    drops: DropCounter,
    what: str = "",
) -> pd.DataFrame:
    """Runs of `method` with a known dataset and a finite score (model, dataset, score).

    Shared by the KB's edges and the auxiliary ones; `what` prefixes the drop reasons
    of auxiliary runs so the two are counted apart. The index is the records' rows, so
    the caller can add columns (the primary edges' cost).
    """
    prefix = f"{what} " if what else ""
    records = records[records["method"] == method]
    names = _resolve(records["finetuned_dataset"].astype(str).str.strip(), datasets)
    junk = sorted(set(records["finetuned_dataset"].astype(str)[names.isna()]))
    records = records[
        drops.drop(
            names.isna(),
            f"{prefix}dataset label not in {TARGET_FEATURES_CSV} ({', '.join(junk[:8])})",
        )
    ]
    names = names[names.notna()]
    scores_in_range(records, score_column, file, score_column)
    score = numeric_column(records, score_column, file)
    records, names, score = _drop_missing_scores(
        records, names, score, f"{prefix}run without a finite {score_column}", drops
    )
    model = records["model"].astype(str).str.strip()
    return pd.DataFrame({"model": model, "dataset": names, "score": score})


def _drop_missing_scores(
    records: pd.DataFrame,
    names: pd.Series,
    score: pd.Series,
    reason: str,
    drops: DropCounter,
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    keep = drops.drop(~np.isfinite(score), reason)
    return records[keep], names[keep], score[keep]


def _cost_hours(records: pd.DataFrame, file: Path, drops: DropCounter) -> pd.Series:
    """train_runtime (seconds) as GPU hours; unknown, negative or infinite runtimes become NaN.

    A bad runtime only loses the cost, not the score, so the run is kept; negative and
    infinite ones are counted (a missing one is ordinary and is not).
    """
    if "train_runtime" not in records.columns:
        return pd.Series(np.nan, index=records.index)
    seconds = numeric_column(records, "train_runtime", file)
    invalid = (seconds < 0) | np.isinf(seconds)
    if invalid.any():
        reason = "negative or infinite train_runtime ignored (cost left unknown)"
        drops.counts[reason] += int(invalid.sum())
    absurd = beyond_limit(seconds / SECONDS_PER_HOUR)
    if absurd.any():
        reason = f"train_runtime beyond {VALUE_LIMIT:g} hours ignored (cost left unknown)"
        drops.counts[reason] += int(absurd.sum())
        invalid |= absurd
    return seconds.where(~invalid) / SECONDS_PER_HOUR


def _with_score_before(
    src: Path,
    edges: pd.DataFrame,
    method: str | None,
    datasets: list[str],
    drops: DropCounter,
) -> pd.DataFrame:
    """Add `score_before`: the chosen transferability score of each kept pair (else NaN)."""
    edges = edges.assign(score_before=np.nan)
    if method is None:
        return edges
    file = src / TRANSFERABILITY_CSV
    table = read_table(file, ("model", "target_dataset", "metric", "score"))
    table = table[table["metric"].astype(str).str.strip() == TRANSFERABILITY_METRICS[method]]
    score = numeric_column(table, "score", file)
    names = _resolve(table["target_dataset"].astype(str).str.strip(), datasets)
    proxies = pd.DataFrame(
        {"model": table["model"].astype(str).str.strip(), "dataset": names, "proxy": score}
    )
    keep = drops.drop(
        names.isna() | ~np.isfinite(score),
        f"{file.name}: {method} row without a known dataset or a finite score",
    )
    keep &= drops.drop(keep & beyond_limit(score), f"{file.name}: {method} score beyond "
                       f"+-{VALUE_LIMIT:g} (absurd)")
    proxies = proxies[keep]
    proxies = proxies.groupby(["model", "dataset"], as_index=False)["proxy"].mean()
    merged = edges.merge(proxies, on=["model", "dataset"], how="left", indicator=True)
    unmatched = len(proxies) - int((merged["_merge"] == "both").sum())
    if unmatched:
        drops.counts[f"{file.name}: {method} pair without a kept fine-tuning run"] += unmatched
    merged["score_before"] = merged["proxy"]
    return merged.drop(columns=["proxy", "_merge"])


def alias_key(name: str) -> str:
    """Names that differ only in case or in `/`, `_`, `-` separators share a key."""
    return re.sub(r"[/_\-\s]+", "/", str(name).strip().lower())


def _resolve(labels: pd.Series, names: list[str]) -> pd.Series:
    """Map labels onto `names`: exact match, else a unique alias-key match, else NaN."""
    exact = set(names)
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(alias_key(name), []).append(name)

    def one(label: str) -> str | float:
        if label in exact:
            return label
        candidates = by_key.get(alias_key(label), [])
        return candidates[0] if len(candidates) == 1 else np.nan

    return labels.map(one)


def _model_features(file: Path, models: list[str], drops: DropCounter) -> pd.DataFrame:
    """One-hot categoricals and scaled numbers; models without metadata get indicators."""
    config = read_table(file, ("model",), ragged=True)  # its writer drops trailing empties
    config = config[config["model"].notna()].copy()
    config["model"] = config["model"].astype(str).str.strip()
    config = config[
        drops.drop(config.duplicated("model"), f"{file.name}: repeated model row (first kept)")
    ]
    table = config.set_index("model").reindex(models)
    missing = ~table.index.isin(config["model"])
    blocks = [pd.DataFrame({"metadata_missing": missing.astype(float)}, index=table.index)]
    for column, prefix in MODEL_CATEGORICAL.items():
        if column in table.columns:
            blocks.append(one_hot(table[column], prefix))
    for column in _numeric_columns(config):
        numbers = feature_column(config, column, file).set_axis(config["model"])
        blocks.append(scaled_numbers(numbers.reindex(models), f"log_{column}", log_scale=True))
    features = pd.concat(blocks, axis=1)
    if not features["metadata_missing"].any():
        features = features.drop(columns="metadata_missing")
    return features


def _numeric_columns(config: pd.DataFrame) -> list[str]:
    """Numeric metadata columns: those whose filled cells are mostly numbers, leaving out
    unnamed index columns and the categoricals. "Mostly", not "all": a stray text cell
    in a number column must be reported (by `feature_column`), not drop the column."""
    columns = []
    for column in config.columns:
        if str(column).startswith("Unnamed") or column in (*MODEL_CATEGORICAL, "model"):
            continue
        filled = config[column].dropna()
        if len(filled) and filled.map(is_number).mean() > 0.5:
            columns.append(column)
    return columns


def _dataset_features(targets: pd.DataFrame) -> pd.DataFrame:
    """log size and number of classes, standardised over the KB's datasets."""
    return pd.concat(
        [
            scaled_numbers(targets["size"], "log_size", log_scale=True),
            scaled_numbers(targets["number_of_classes"], "number_of_classes", log_scale=False),
        ],
        axis=1,
    )


def _similarity_file(src: Path, chosen: str | None) -> Path | None:
    """The similarity matrix to use: the named one, the only one, or none."""
    if chosen:
        path = src / chosen
        if not path.is_file():
            raise ImportInputError(f"{path}: similarity file not found")
        return path
    found = sorted(src.glob(SIMILARITY_GLOB))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ImportInputError(f"{src}: several similarity files ({names}); pick one")
    return found[0] if found else None


def _distances(file: Path, datasets: list[str], drops: DropCounter) -> pd.DataFrame:
    """Distances between KB datasets from the square matrix (directions averaged)."""
    matrix = read_table(file, (), index_col=0)
    matrix.index = matrix.index.astype(str).str.strip()
    matrix.columns = matrix.columns.astype(str).str.strip()
    if sorted(matrix.index) != sorted(matrix.columns):
        raise ImportInputError(f"{file}: not a square matrix (row and column labels differ)")
    for column in matrix.columns:
        matrix[column] = numeric_column(matrix.reset_index(drop=True), column, file).to_numpy()
    negative = np.argwhere(matrix.to_numpy() < 0)
    if len(negative):
        row, col = negative[0]
        raise ImportInputError(
            f"{file} row {row + 1}: negative distance {matrix.iat[row, col]} "
            f"({matrix.index[row]!r} vs {matrix.columns[col]!r})"
        )
    values = matrix.to_numpy(dtype=float)
    absurd = np.argwhere(np.isfinite(values) & (np.abs(values) > VALUE_LIMIT))
    if len(absurd):
        row, col = absurd[0]
        raise ImportInputError(
            f"{file} row {row + 1}: distance {matrix.iat[row, col]:g} is beyond "
            f"{VALUE_LIMIT:g} ({matrix.index[row]!r} vs {matrix.columns[col]!r})"
        )
    label_of = _label_per_dataset(list(matrix.index), datasets)
    rows = []
    for i, a in enumerate(datasets):
        for b in datasets[i + 1 :]:
            if a not in label_of or b not in label_of:
                continue
            both = [matrix.loc[label_of[a], label_of[b]], matrix.loc[label_of[b], label_of[a]]]
            finite = [v for v in both if np.isfinite(v)]
            if finite:
                rows.append((a, b, float(np.mean(finite))))
            else:
                drops.counts[f"{file.name}: dataset pair without a value"] += 1
    return pd.DataFrame(rows, columns=list(DISTANCE_COLUMNS))


def _label_per_dataset(labels: list[str], datasets: list[str]) -> dict[str, str]:
    """For each dataset, the matrix label used: exact name first, else first alias in file order."""
    resolved = _resolve(pd.Series(labels), datasets)
    chosen: dict[str, str] = {}
    for label, dataset in zip(labels, resolved, strict=True):
        if isinstance(dataset, str) and (dataset not in chosen or label == dataset):
            if dataset in chosen and chosen[dataset] != label:
                log.info("similarity label %r preferred over alias %r", label, chosen[dataset])
            chosen[dataset] = label
    return chosen


def _no_distances() -> pd.DataFrame:
    return pd.DataFrame(columns=list(DISTANCE_COLUMNS))


def _slug_edges(edges: pd.DataFrame, models: dict, datasets: dict) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "model": edges["model"].map(models),
            "dataset": edges["dataset"].map(datasets),
            "score": edges["score"],
            "score_before": edges["score_before"],
            "cost": edges["cost"],
        }
    )
    return out.sort_values(["dataset", "model"]).reset_index(drop=True)


def _slug_aux_edges(aux: pd.DataFrame, models: dict, datasets: dict) -> pd.DataFrame:
    """Auxiliary edges under the KB's slugs (their names are all in the KB by construction)."""
    out = aux.assign(model=aux["model"].map(models), dataset=aux["dataset"].map(datasets))
    return out.sort_values(["dataset", "model", "recipe"]).reset_index(drop=True)


def _slug_index(features: pd.DataFrame, slugs: dict, name: str) -> pd.DataFrame:
    out = features.rename(index=slugs)
    out.index.name = name
    return out.sort_index()


def _slug_distances(distances: pd.DataFrame, datasets: dict) -> pd.DataFrame:
    out = distances.copy()
    out["dataset_a"] = out["dataset_a"].map(datasets)
    out["dataset_b"] = out["dataset_b"].map(datasets)
    return out.reset_index(drop=True)


def _description(
    src: Path, peft: str, score_column: str, sim_file: Path | None, score_before: str | None
) -> str:
    distances = (
        f"dataset distances from {sim_file.name}"
        if sim_file
        else "no dataset distances (no corr_domain_similarity_*.csv in the folder)"
    )
    return (
        f"Imported from the TransferGraph experiment folder {src.name} (classification "
        f"fine-tuning records, not text-to-image): {peft} fine-tuning runs, score = "
        f"{score_column} (higher is better), repeated runs averaged, cost = train_runtime "
        f"in GPU hours, {distances}; model features from {MODEL_CONFIG_CSV}, dataset "
        f"features from {TARGET_FEATURES_CSV}. Original names in ids.csv. "
        + (
            f"score_before = {score_before} from {TRANSFERABILITY_CSV} (a proxy measured "
            "before fine-tuning)."
            if score_before
            else "score_before unknown."
        )
    )


def _aux_description(recipe: str | None, count: int) -> str:
    if recipe is None:
        return " No auxiliary edges (auxiliary off)."
    return (
        f" Auxiliary edges: {count} {recipe} fine-tuning results of the same models on the "
        f"same datasets (recipe {recipe}, same score column, repeated runs averaged)."
    )
