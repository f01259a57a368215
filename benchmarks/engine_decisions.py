"""Decision quality: one-shot and sequential selection on the demo KB, TransferGraph text
and PARC, over seeds, with paired bootstrap intervals of the difference to Overall.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/engine_decisions.py \
        [--kbs demo,tg,parc] [--seeds 3] [--cache DIR] [--out PATH]
(default out: benchmarks/results/engine_decisions.json)

Per KB and seed: M&C's leave-one-out prediction per target (default settings; the
TransferGraph KB is the default import with its LoRA runs as auxiliary results, the 8
published targets; cached under --cache as pickles so reruns skip the fits), then
- one-shot orders: `mnc` (M&C's ranking), `overall`, `random` (exact expectation);
- sequential orders (`mnc_core.engine.sequential`): `mnc-seq` (M&C prior) and
  `collaborative` (no prior).
Figures: mean fine-tunings to near-best (with median and max over targets), regret@3
of the one-shot orders and regret after 3 sequential picks, averaged over seeds; the
95 % paired bootstrap interval (2000 resamples of the targets, seeds pooled per
target) of each method's difference to Overall. Goals of issue 13: fine-tunings at
most half of Overall's, regret after 3 picks at most 0.7x Overall's regret@3.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from mnc_core.engine import sequential as seq  # noqa: E402
from mnc_core.engine.baselines import overall_goodness  # noqa: E402
from mnc_core.engine.decisions import (  # noqa: E402
    kb_epsilon,
    order_decisions,
    order_of,
    random_decision_metrics,
)
from mnc_core.engine.inputs import BOTH  # noqa: E402
from mnc_core.engine.predict import Fold, fold_train_scores, predict_folds  # noqa: E402
from mnc_core.engine.protocols import _folds  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("mnc", "overall", "random", "mnc-seq", "collaborative")


def load_kb(name: str):
    if name == "demo":
        from mnc_core.kb.demo import make_zoo_demo_kb

        return make_zoo_demo_kb(seed=0, n_datasets=32), None
    if name == "tg":
        sys.path.insert(0, str(Path(__file__).parent))
        from engine_tg_quality import published

        from mnc_core.kb.importers.transfergraph import import_transfergraph

        return import_transfergraph(SHARED / "transfergraph-text").kb, published()[0]
    from mnc_core.kb.importers.parc import import_parc

    return import_parc(SHARED / "parc" / "all.csv").kb, None


def predictions(kb, name, targets, seed, cache: Path | None):
    path = cache / f"pred_{name}_{seed}.pkl" if cache else None
    if path is not None and path.exists():
        return pickle.loads(path.read_bytes())
    folds, _ = _folds(kb, kb.edges, targets or list(kb.datasets), prefix="loo")
    pred = predict_folds(kb, folds, None, seed, {"mnc": BOTH})["mnc"]
    out = {f.target: pred[f.key].table for f in folds}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(out))
    return out


def rows_for(kb, tables) -> dict[str, dict[str, dict]]:
    hib = kb.higher_is_better
    rows: dict[str, dict[str, dict]] = {m: {} for m in METHODS}
    for target, table in tables.items():
        fold = Fold(key=target, target=target, known_edges=kb.edges)
        train = fold_train_scores(kb, fold)
        truth = fold.target_edges().set_index("model")["score"]
        best = truth.max() if hib else truth.min()
        eps = kb_epsilon(kb, best)
        orders = seq.sequential_fold_orders(train, truth, hib, lambda b: kb_epsilon(kb, b),
                                            table["goodness"])
        orders = {"mnc-seq": orders["mnc"], "collaborative": orders["collaborative"],
                  "mnc": order_of(table["goodness"]),
                  "overall": order_of(overall_goodness(train, hib))}
        for name, order in orders.items():
            rows[name][target] = order_decisions(order, truth, hib, eps)
        rows["random"][target] = random_decision_metrics(truth, hib, eps)
    return rows


def bootstrap(diff: np.ndarray, n: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n)]
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(per_seed: list[dict]) -> dict:
    targets = list(per_seed[0]["overall"])
    out = {}
    for metric in ("fine_tunings_to_near_best", "regret@1", "regret@3", "regret@5"):
        out[metric] = {}
        base = np.array([[r["overall"][t][metric] for t in targets] for r in per_seed])
        for method in METHODS:
            values = np.array([[r[method][t][metric] for t in targets] for r in per_seed])
            entry = {"mean": float(values.mean()),
                     "per_seed": [round(float(v), 4) for v in values.mean(axis=1)],
                     "median": float(np.median(values.mean(axis=0))),
                     "max": float(values.mean(axis=0).max())}
            if method != "overall":
                entry["diff_to_overall_ci95"] = bootstrap((values - base).mean(axis=0))
            out[metric][method] = entry
    return out


def fmt(ci) -> str:
    return "" if ci is None else f"[{ci[0]:+.3g}, {ci[1]:+.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kbs", default="demo,tg,parc")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS / "engine_decisions.json")
    args = parser.parse_args()
    document = {}
    for name in args.kbs.split(","):
        if name in ("tg", "parc") and not SHARED.is_dir():
            print(f"{name}: {SHARED} absent, skipped")
            continue
        kb, targets = load_kb(name)
        per_seed = [rows_for(kb, predictions(kb, name, targets, s, args.cache))
                    for s in range(args.seeds)]
        summary = summarise(per_seed)
        document[name] = {"seeds": args.seeds, "summary": summary, "per_seed_rows": per_seed}
        ft, r3 = summary["fine_tunings_to_near_best"], summary["regret@3"]
        print(f"\n{name} ({args.seeds} seeds; regret in the KB's unit)")
        print(f"{'method':<14}{'ft-near mean':>13}{'ft med':>8}{'ft max':>8}{'CI diff':>22}"
              f"{'regret@3':>10}{'CI diff':>22}")
        for m in METHODS:
            ci = ft[m].get("diff_to_overall_ci95")
            ci3 = r3[m].get("diff_to_overall_ci95")
            print(f"{m:<14}{ft[m]['mean']:>13.2f}{ft[m]['median']:>8.1f}{ft[m]['max']:>8.1f}"
                  f"{fmt(ci):>22}{r3[m]['mean']:>10.4f}{fmt(ci3):>22}")
        goal_ft = ft["mnc-seq"]["mean"] <= 0.5 * ft["overall"]["mean"]
        goal_r3 = r3["mnc-seq"]["mean"] <= 0.7 * r3["overall"]["mean"]
        print(f"goal ft <= 0.5x Overall: {goal_ft} ({ft['mnc-seq']['mean']:.2f} vs "
              f"{0.5 * ft['overall']['mean']:.2f}); goal regret after 3 <= 0.7x Overall's "
              f"regret@3: {goal_r3} ({r3['mnc-seq']['mean']:.4f} vs "
              f"{0.7 * r3['overall']['mean']:.4f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, default=float))


if __name__ == "__main__":
    main()
