"""TransferGraph text benchmark: M&C per dataset, with and without auxiliary records, vs baselines.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/engine_tg_quality.py [--seeds N] [--json PATH]

Leave-one-dataset-out on the 8 targets of published_w-kendall_correlation.csv
(full fine-tuning, eval_accuracy), default engine settings, seed 0 (and the mean of
the M&C rows over seeds 0..N-1 with `--seeds N`):
- `mnc`: the default ranker on the default import, whose KB holds the LoRA runs of
  records.csv as auxiliary results (extra training tasks; the held-out dataset's
  LoRA runs are never used). No score before fine-tuning: the published
  TransferGraph 0.583 uses no transferability score either;
- `mnc-no-aux`: the same on a KB without the LoRA runs (`--no-auxiliary`);
- `mnc+logme`: `mnc` with LogME imported as `score_before` and fed to the ranker
  as `model:before_rank` (LogME is measured on the target before fine-tuning);
- `overall` (the baseline: mean rank over the fold's full fine-tuning records),
  `overall+aux` (the same over its full fine-tuning *and* LoRA records: what the
  extra records give without any learning), `direct` and `initial` (= LogME), and
  the published TransferGraph best and LogME rows.
Each fold sees only the fold's training datasets' fine-tuning results.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mnc_core.engine import baselines  # noqa: E402
from mnc_core.engine.embedding import embed_graphs  # noqa: E402
from mnc_core.engine.inputs import BOTH  # noqa: E402
from mnc_core.engine.metrics import (  # noqa: E402
    dataset_metrics,
    mean_metrics,
    normalised_ranks,
    overall_best_model,
)
from mnc_core.engine.predict import (  # noqa: E402
    EngineSettings,
    Fold,
    fit_and_predict,
    fold_context,
    fold_graph,
)
from mnc_core.ids import slugify  # noqa: E402
from mnc_core.kb.importers.transfergraph import import_transfergraph  # noqa: E402

TG_DIR = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "transfergraph-text"
PUBLISHED = {
    "wtau": TG_DIR / "published_w-kendall_correlation.csv",
    "top1": TG_DIR / "published_top@1_correlation.csv",
}
PUBLISHED_ROWS = {
    "xgb_node2vec+_all_normalize_without_transfer": "published TG",
    "LogME": "published LogME",
}
log = logging.getLogger(__name__)
METHODS = ["mnc", "mnc-no-aux", "mnc+logme", "overall", "overall+aux", "direct", "initial"]
MNC_METHODS = ("mnc", "mnc-no-aux", "mnc+logme")


def published(metric: str = "wtau") -> tuple[list[str], dict[str, dict[str, float]]]:
    """Target slugs (file order) and the published per-dataset values of the chosen rows.

    The files' own `average` column is left out: it is not the mean of the 8 columns
    (0.583 vs 0.563 for TransferGraph's best), so the table recomputes the mean.
    """
    with open(PUBLISHED.get(metric, PUBLISHED["wtau"]), newline="") as handle:
        rows = list(csv.reader(handle))
    targets = [slugify(c) for c in rows[0][1:] if c and c != "average"]
    values = {
        PUBLISHED_ROWS[row[0]]: dict(zip(targets, map(float, row[1:]), strict=False))
        for row in rows[1:]
        if row[0] in PUBLISHED_ROWS and metric in PUBLISHED
    }
    return targets, values


def proxy_ranks(kb) -> pd.DataFrame:
    """Normalised ranks (dataset x model, 0 = best) of the KB's transferability score
    (`score_before` of an import with `score_before="logme"` or `"reg-h-score"`)."""
    table = kb.edges.pivot(index="dataset", columns="model", values="score_before")
    return normalised_ranks(table, True)


def evaluate(seed: int = 0) -> dict:
    """Metric rows `{method: {dataset: row}}` on the published targets."""
    kb = import_transfergraph(TG_DIR, score_before="logme").kb
    no_aux = replace(kb, aux_edges=kb.aux_edges.iloc[:0])
    targets, _ = published()
    settings = EngineSettings()
    reference = overall_best_model(kb.score_matrix(), kb.higher_is_better)
    folds = [Fold(key=t, target=t, known_edges=kb.edges) for t in targets]
    vectors = embed_graphs({f.key: fold_graph(kb, f) for f in folds}, settings.node2vec, seed)
    rows: dict[str, dict[str, dict]] = {m: {} for m in METHODS}
    for fold in folds:
        truth = fold.target_edges().set_index("model")["score"]
        plain = fold_context(kb, fold, vectors[fold.key])
        bare = fold_context(no_aux, fold, vectors[fold.key])
        with_logme = fold_context(kb, fold, vectors[fold.key], use_score_before=True)
        both = pd.concat([plain.train_scores, *plain.aux_scores.values()])
        goodness = {
            "mnc": fit_and_predict(plain, fold.target, BOTH, settings, seed).goodness,
            "mnc-no-aux": fit_and_predict(bare, fold.target, BOTH, settings, seed).goodness,
            "mnc+logme": fit_and_predict(with_logme, fold.target, BOTH, settings, seed).goodness,
            "overall": baselines.overall_goodness(plain.train_scores, kb.higher_is_better),
            "overall+aux": baselines.overall_goodness(both, kb.higher_is_better),
            "direct": baselines.direct_goodness(
                plain.train_scores, kb.dataset_features, fold.target, True, seed
            ),
            "initial": baselines.initial_goodness(
                fold.target_edges().set_index("model")["score_before"], kb.higher_is_better
            ),
        }
        for method, value in goodness.items():
            rows[method][fold.target] = dataset_metrics(value, truth, True, reference)
        log.info("seed %d: %s done", seed, fold.target)
    return rows


def table(rows: dict, metric: str) -> str:
    targets, pub = published(metric)
    names = [*METHODS, *PUBLISHED_ROWS.values()]
    lines = [f"{metric:<22}" + "".join(f"{m:>16}" for m in names)]
    for t in targets:
        cells = [rows[m][t][metric] for m in METHODS]
        cells += [pub[p][t] if p in pub else None for p in PUBLISHED_ROWS.values()]
        lines.append(f"{t:<22}" + "".join(_cell(c) for c in cells))
    means = [mean_metrics(rows[m].values())[metric] for m in METHODS]
    means += [
        float(np.mean(list(pub[p].values()))) if p in pub else None
        for p in PUBLISHED_ROWS.values()
    ]
    lines.append(f"{'mean':<22}" + "".join(_cell(c) for c in means))
    return "\n".join(lines)


def wins_over_overall(rows: dict, method: str) -> int:
    """On how many targets `method`'s weighted tau is above Overall's (the issue's 6-of-8 bar)."""
    return sum(rows[method][t]["wtau"] > rows["overall"][t]["wtau"] for t in rows[method])


def seed_means(seed0: dict, n_seeds: int) -> dict:
    """Mean weighted tau of the M&C rows over seeds 0..n-1 (seed 0's rows reused), and
    per seed the number of targets above Overall (deterministic: no seed)."""
    runs = [seed0, *(evaluate(seed) for seed in range(1, n_seeds))]
    out = {}
    for method in MNC_METHODS:
        per_seed = [mean_metrics(r[method].values())["wtau"] for r in runs]
        rounded = [round(v, 3) for v in per_seed]
        wins = [wins_over_overall(r, method) for r in runs]
        out[method] = {"mean": float(np.mean(per_seed)), "per_seed": rounded, "above_overall": wins}
    return out


def _cell(value) -> str:
    return f"{'n/a':>16}" if value is None else f"{value:>16.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the per-dataset rows here")
    parser.add_argument("--seeds", type=int, default=1, help="M&C means over seeds 0..N-1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%X")
    for name in ("mnc_core", __name__):
        logging.getLogger(name).setLevel(logging.INFO)
    if not TG_DIR.is_dir():
        raise SystemExit(f"{TG_DIR} absent: nothing to benchmark")
    rows = evaluate()
    for metric in ("wtau", "top1", "osr"):
        print(f"\n{table(rows, metric)}")
    wins = wins_over_overall(rows, "mnc")
    print(f"\nM&C (no LogME) weighted tau above Overall on {wins} of {len(rows['mnc'])}")
    summary = {m: {"mean": mean_metrics(r.values()), "per_dataset": r} for m, r in rows.items()}
    if args.seeds > 1:
        summary["seeds"] = seed_means(rows, args.seeds)
        print(f"\nmean weighted tau over seeds 0..{args.seeds - 1}:")
        for method, row in summary["seeds"].items():
            print(
                f"  {method:<12} {row['mean']:.3f}  (per seed: {row['per_seed']}; "
                f"targets above Overall: {row['above_overall']})"
            )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=float))


if __name__ == "__main__":
    main()
