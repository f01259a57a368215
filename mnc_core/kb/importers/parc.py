"""Import the PARC oracle table (Bolya et al., NeurIPS 2021) as a knowledge base.

`all.csv` has one row per (architecture, source dataset, target dataset) with
`Oracle`, the fine-tuned accuracy in percent. A model is the pair
(architecture, pre-training source): id `slugify(arch + "--" + source)`, features
one-hot architecture and one-hot source. Datasets are the targets; PARC gives no
dataset features and no dataset distances, so the KB has zero dataset-feature
columns and an empty distance table (the description says so). Rows with a
negative Oracle (PARC's `-1` marks a run that was not done) are dropped and
counted, and so are rows whose Oracle is empty, NaN or infinite; a repeated
(model, target) row is averaged. An Oracle above 100 is refused (not a percentage),
and so are two (architecture, source) pairs that join to one model name (`a--b` +
`c` and `a` + `b--c`): their scores would silently be averaged as one model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mnc_core.kb.importers.common import (
    DropCounter,
    ImportInputError,
    ImportResult,
    NameSource,
    average_duplicates,
    data_row,
    id_map_table,
    numeric_column,
    one_hot,
    read_table,
    scores_in_range,
    slug_map,
)
from mnc_core.kb.schema import DISTANCE_COLUMNS, KnowledgeBase

COLUMNS = ("Architecture", "Source Dataset", "Target Dataset", "Oracle")
METRIC = "oracle_accuracy"
MODEL_SEPARATOR = "--"


def import_parc(csv_file: str | Path) -> ImportResult:
    """Read PARC's oracle CSV into a `KnowledgeBase` (accuracy in percent, higher is better)."""
    file = Path(csv_file)
    table = read_table(file, COLUMNS)
    drops = DropCounter()
    _check_names(table, file)
    oracle = numeric_column(table, "Oracle", file)
    keep = _usable_oracle(oracle, drops)
    scores_in_range(table[keep], "Oracle", file, METRIC)
    arch = table["Architecture"].astype(str).str.strip()
    source = table["Source Dataset"].astype(str).str.strip()
    _refuse_joined_collisions(arch, source, file)
    names = pd.DataFrame(
        {
            "model": arch + MODEL_SEPARATOR + source,
            "dataset": table["Target Dataset"].astype(str).str.strip(),
        }
    )
    if not keep.any():
        raise ImportInputError(f"{file}: no row with an Oracle accuracy")
    runs = names[keep].assign(score=oracle[keep])
    edges = average_duplicates(runs, ["model", "dataset"], drops, "(model, target)")
    models = slug_map(
        edges["model"], NameSource(file, "Architecture + Source Dataset", names["model"])
    )
    datasets = slug_map(edges["dataset"], NameSource(file, "Target Dataset", names["dataset"]))
    kb = KnowledgeBase(
        edges=_edges(edges, models, datasets),
        metric=METRIC,
        higher_is_better=True,
        model_features=_model_features(arch[keep], source[keep], models),
        dataset_features=pd.DataFrame(index=pd.Index(sorted(datasets.values()), name="dataset")),
        dataset_distances=pd.DataFrame(columns=list(DISTANCE_COLUMNS)),
        description=(
            f"Imported from the PARC oracle table {file.name} (image classification "
            "fine-tuning accuracy in percent, not text-to-image; higher is better). A model "
            "is (architecture, pre-training source). PARC provides no dataset features and "
            "no dataset distances: the dataset-feature table has zero columns and the "
            "distance table is empty. Original names in ids.csv."
        ),
        synthetic=False,
        extra={"importer": "parc", "dropped_rows": drops.as_dict()},
        source=str(file),
        id_map=id_map_table(models, datasets),
    )
    return ImportResult(kb=kb, dropped=drops.as_dict())


def _check_names(table: pd.DataFrame, file: Path) -> None:
    """An empty name cell is an error (naming file, row, column): no id can stand for it."""
    for column in COLUMNS[:3]:
        missing = table[column].isna() | (table[column].astype(str).str.strip() == "")
        if missing.any():
            row = data_row(table.index, int(np.flatnonzero(missing.to_numpy())[0]))
            raise ImportInputError(f"{file} row {row}: column {column!r} is empty")


def _refuse_joined_collisions(arch: pd.Series, source: pd.Series, file: Path) -> None:
    """Two different (architecture, source) pairs must not join to one model name.

    Why: the model is keyed by `arch + "--" + source`, so ("a--b", "c") and
    ("a", "b--c") would become one model and their scores averaged without a word.
    """
    joined = arch + MODEL_SEPARATOR + source
    pairs = pd.DataFrame({"arch": arch, "source": source, "joined": joined})
    pairs = pairs.drop_duplicates(["arch", "source"])
    clash = pairs[pairs.duplicated("joined", keep=False)]
    if clash.empty:
        return
    both = clash[clash["joined"] == clash["joined"].iloc[0]].head(2)
    where = [
        f"row {data_row(both.index, i)} (Architecture {row.arch!r}, Source Dataset "
        f"{row.source!r})"
        for i, row in enumerate(both.itertuples())
    ]
    raise ImportInputError(
        f"{file}: {where[0]} and {where[1]} both make the model name "
        f"{both['joined'].iloc[0]!r}; rename one so that the two models stay apart"
    )


def _usable_oracle(oracle: pd.Series, drops: DropCounter) -> pd.Series:
    """Keep-mask of rows with a finite, non-negative Oracle; the others are counted.

    Empty, NaN and infinite values share one reason: none is an accuracy, and an
    infinite one would only fail later as a row of the output KB.
    """
    finite = np.isfinite(oracle)
    keep = drops.drop(~finite, "no finite Oracle value")
    negative = finite & (oracle < 0)
    return keep & drops.drop(negative, "negative Oracle (PARC marks runs not done with -1)")


def _edges(edges: pd.DataFrame, models: dict, datasets: dict) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "model": edges["model"].map(models),
            "dataset": edges["dataset"].map(datasets),
            "score": edges["score"],
            "score_before": np.nan,
            "cost": np.nan,
        }
    )
    return out.sort_values(["dataset", "model"]).reset_index(drop=True)


def _model_features(arch: pd.Series, source: pd.Series, models: dict) -> pd.DataFrame:
    """One-hot architecture and one-hot source dataset, one row per model."""
    pairs = pd.DataFrame({"arch": arch, "source": source})
    pairs["model"] = (pairs["arch"] + MODEL_SEPARATOR + pairs["source"]).map(models)
    pairs = pairs.dropna(subset=["model"]).drop_duplicates("model").set_index("model")
    features = pd.concat(
        [one_hot(pairs["arch"], "arch"), one_hot(pairs["source"], "source")], axis=1
    )
    features.index.name = "model"
    return features.sort_index()
