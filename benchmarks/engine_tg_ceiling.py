"""TransferGraph text: how high can a ranker built from these inputs go? Oracle ceilings.

    .venv/bin/python benchmarks/engine_tg_ceiling.py

The 0.62 weighted-tau goal of issue 2 was not reached by any principled variant
(docs/engine.md, "What we tried"). This script asks whether it is reachable at all
with the per-model signals a ranker has for a held-out target: the models' ranks on
the 9 other datasets (what Overall averages) and the target's transferability
scores (LogME, Reg-H-Score, computed without fine-tuning on it). For each of the 8
published targets it reports, by the engine's own `dataset_metrics`:

- honest predictors (nothing of the target's truth used): Overall, LogME,
  Reg-H-Score, and "LogME neighbours": training datasets weighted by how similar
  their LogME profile (Spearman over models) is to the target's;
- oracles, which DO read the target's true ranking and are therefore upper bounds,
  not methods: the best single training dataset's ranking; the best non-negative
  linear mix of the training datasets' rank vectors (least squares against the
  target's true ranks, fitted in-sample on the target itself); the same mix with
  LogME / LogME + Reg-H ranks as extra columns.

If even the in-sample oracle mix of the training rankings stays below 0.62, a
ranker that must *learn* its weights from 9 other datasets cannot be expected to
pass it from those inputs.

A second table asks how well the ground truth agrees with *itself*, i.e. how much of
a ranking a single fine-tuning run can reproduce. These references fine-tune on the
target, which no selection method may do:

- LoRA on the target: every model's LoRA run on the target (the folder's `lora`
  records) as the goodness, against the full fine-tuning truth;
- repeat run: `records.csv` holds two full fine-tuning runs with identical
  hyper-parameters for many (model, target) pairs (the KB averages them); run 1 as
  the goodness, run 2 as the truth, over the models that have both. Overall is
  scored against the same run 2 on the same models, so the two are comparable.

Runs in a few seconds; deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from engine_tg_quality import TG_DIR, proxy_ranks, published
from scipy.optimize import nnls
from scipy.stats import spearmanr

from mnc_core.engine.metrics import dataset_metrics, normalised_ranks
from mnc_core.ids import slugify
from mnc_core.kb.importers.transfergraph import RECORDS_CSV, import_transfergraph

RUN_SETTINGS = [
    "batch_size", "lr_scheduler_type", "learning_rate", "gradient_accumulation_steps",
    "num_train_epochs", "seed",
]
MIN_REPEATED_MODELS = 10


def wtau(goodness: pd.Series, truth: pd.Series) -> float:
    """Weighted tau of a goodness (higher = better) against true accuracies."""
    return dataset_metrics(goodness, truth, True, None)["wtau"]


def profile_similarity(ranks: pd.DataFrame, target: str, train: list[str]) -> pd.Series:
    """Spearman similarity of the target's rank profile (over models) to each training one."""
    return pd.Series({
        d: spearmanr(ranks.loc[target], ranks.loc[d], nan_policy="omit").statistic
        for d in train
    })


def logme_neighbours(ranks: pd.DataFrame, logme: pd.DataFrame, target: str,
                     train: list[str], temperature: float = 0.1) -> pd.Series:
    """Training ranks weighted by softmax(LogME-profile Spearman / temperature)."""
    similarity = profile_similarity(logme, target, train)
    weights = np.exp((similarity - similarity.max()) / temperature)
    known = ranks.loc[train].notna().mul(weights, axis=0).sum()
    return -(ranks.loc[train].mul(weights, axis=0).sum() / known)


def oracle_mix(columns: pd.DataFrame, true_ranks: pd.Series) -> pd.Series:
    """In-sample non-negative least-squares mix of rank columns (an upper bound)."""
    filled = columns.fillna(columns.mean())
    weights, _ = nnls(filled.to_numpy(), true_ranks.to_numpy())
    return pd.Series(-(filled.to_numpy() @ weights), index=columns.index)


def target_row(scores, ranks, logme, regh, target) -> dict[str, float]:
    """Every predictor's and oracle's weighted tau on one target."""
    truth = scores.loc[target].dropna()
    train = [d for d in ranks.index if d != target]
    own = ranks.loc[target].reindex(truth.index)
    columns = ranks.loc[train].T.reindex(truth.index)
    with_logme = columns.assign(logme=logme.loc[target].reindex(truth.index))
    with_both = with_logme.assign(regh=regh.loc[target].reindex(truth.index))
    return {
        "overall": wtau(-ranks.loc[train].mean(), truth),
        "logme": wtau(-logme.loc[target], truth),
        "reg-h": wtau(-regh.loc[target], truth),
        "logme neighbours": wtau(logme_neighbours(ranks, logme, target, train), truth),
        "(LogME similarity vs true similarity, Spearman)": spearmanr(
            profile_similarity(logme, target, train), profile_similarity(ranks, target, train),
            nan_policy="omit",
        ).statistic,
        "ORACLE best single dataset": max(wtau(-ranks.loc[d], truth) for d in train),
        "ORACLE mix of 9 datasets": wtau(oracle_mix(columns, own), truth),
        "ORACLE mix + LogME": wtau(oracle_mix(with_logme, own), truth),
        "ORACLE mix + LogME + Reg-H": wtau(oracle_mix(with_both, own), truth),
    }


def repeated_full_runs(ids: pd.Series) -> pd.DataFrame:
    """Every second full fine-tuning run of a (dataset, model, settings) with its first, KB ids.

    Read from `records.csv` directly because the KB keeps only their average.
    """
    records = pd.read_csv(TG_DIR / RECORDS_CSV)
    full = records[records["peft_method"].isna() & records["eval_accuracy"].notna()]
    runs = full.groupby(["finetuned_dataset", "model", *RUN_SETTINGS], dropna=False)
    full = full.assign(run=runs.cumcount(), run1=runs["eval_accuracy"].transform("first"))
    second = full[full["run"] == 1]
    pairs = pd.DataFrame({
        "dataset": second["finetuned_dataset"].map(slugify),
        "model": second["model"].map(ids),
        "run1": second["run1"],
        "run2": second["eval_accuracy"],
    })
    return pairs.dropna(subset=["model"])


def self_agreement_row(scores, ranks, lora_runs, repeats, target) -> dict[str, float]:
    """The references that fine-tune on the target, and Overall on the same models."""
    truth = scores.loc[target].dropna()
    train = [d for d in ranks.index if d != target]
    overall = -ranks.loc[train].mean()
    lora = lora_runs[lora_runs["dataset"] == target].set_index("model")["score"]
    row = {
        "REFERENCE LoRA on the target": wtau(lora, truth.reindex(lora.index)),
        "(models with a repeat run)": np.nan,
        "(mean |run 1 - run 2| accuracy)": np.nan,
        "REFERENCE repeat run (run 1 vs run 2)": np.nan,
        "overall vs run 2 (same models)": np.nan,
    }
    pairs = repeats[repeats["dataset"] == target].set_index("model")
    if len(pairs) >= MIN_REPEATED_MODELS:
        row["(models with a repeat run)"] = len(pairs)
        row["(mean |run 1 - run 2| accuracy)"] = (pairs["run1"] - pairs["run2"]).abs().mean()
        row["REFERENCE repeat run (run 1 vs run 2)"] = wtau(pairs["run1"], pairs["run2"])
        row["overall vs run 2 (same models)"] = wtau(overall.reindex(pairs.index), pairs["run2"])
    return row


def main() -> None:
    if not TG_DIR.is_dir():
        raise SystemExit(f"{TG_DIR} absent: nothing to run")
    kb = import_transfergraph(TG_DIR, score_before="logme").kb
    scores = kb.score_matrix()
    ranks = normalised_ranks(scores, kb.higher_is_better)
    logme = proxy_ranks(kb)
    regh = proxy_ranks(import_transfergraph(TG_DIR, score_before="reg-h-score").kb)
    targets, _ = published()
    table = pd.DataFrame(
        {t: target_row(scores, ranks, logme, regh, t) for t in targets}
    ).T
    table.loc["mean"] = table.mean()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("weighted tau per target (ORACLE columns read the target's truth:"
              " upper bounds, not methods)\n")
        print(table.round(3).T.to_string())
    print("\nthe row in brackets is not a weighted tau: how well the LogME profile's similarity"
          " orders the training datasets by their true ranking similarity to the target")
    model_ids = kb.id_map[kb.id_map["kind"] == "model"].set_index("original")["id"]
    repeats = repeated_full_runs(model_ids)
    lora_runs = kb.aux_edges[kb.aux_edges["recipe"] == "lora"]
    agreement = pd.DataFrame(
        {t: self_agreement_row(scores, ranks, lora_runs, repeats, t) for t in targets}
    ).T
    agreement.loc["mean"] = agreement.mean()
    agreement.loc["mean", "(models with a repeat run)"] = np.nan
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("\nhow well the truth agrees with itself (REFERENCE rows fine-tune on the target;"
              f" repeat runs shown where >= {MIN_REPEATED_MODELS} models have one)\n")
        print(agreement.round(3).T.to_string())
    print(
        "\nrows in brackets are not weighted taus; means skip empty cells: the repeat-run"
        " rows average the targets that have them"
    )


if __name__ == "__main__":
    main()
