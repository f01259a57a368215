"""Decision quality: one-shot and sequential selection on the demo KB, TransferGraph text
and PARC, over seeds, with paired bootstrap intervals of the difference to Overall.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/engine_decisions.py \
        [--kbs demo,tg,parc] [--seeds 3] [--cache DIR] [--out PATH] \
        [--prior-share fitted|0.5] [--feature-kernel 0.5] [--own-source-best]
        [--compare OTHER.json]
(default out: benchmarks/results/engine_decisions.json)

Per KB and seed (default settings; the TransferGraph KB is the default import with
its LoRA runs as auxiliary results, the 8 published targets; results cached under
--cache as JSON so reruns skip the fits):
- one-shot orders: `mnc_core.engine.protocols.leave_one_out`'s decision rows of M&C,
  its two ablations (`mnc-features-only`, `mnc-graph-only`) and every baseline
  (`overall`, `initial` where the KB has scores before fine-tuning, `direct`,
  `random` as exact expectations);
- sequential orders (`mnc_core.engine.sequential`): `mnc-seq` (the Gaussian score
  posterior of `engine.score_posterior` with M&C's leave-one-out goodness in its
  prior mean, its share fitted on the other targets as in `mnc evaluate --protocol
  sequential`, or fixed by `--prior-share`) and `collaborative` (the rank-scenario
  baseline); and `feature-regression`, mnc-seq's prior without M&C as a static order
  (`score_posterior.feature_regression`: the models' z-scores regressed on the dataset
  features, the mean z-scores where the KB has none). `--feature-kernel W` adds W x
  the cosine similarity of the models' standardised features to the prior covariance
  (a sensitivity check, not the engine).
  `--own-source-best` fills each training dataset's missing scores of the models
  pre-trained on it with that dataset's best score (an assumption: pre-training on a
  dataset makes the best starting point for it; a sensitivity check, not the engine),
  and prints where the KB can check the assumption: the rank of the own-source
  scores it does hold.
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
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mnc_core.engine import score_posterior as gaussian  # noqa: E402
from mnc_core.engine import sequential as seq  # noqa: E402
from mnc_core.engine.decisions import (  # noqa: E402
    kb_epsilon,
    order_decisions,
    order_of,
    target_terms,
)
from mnc_core.engine.inputs import BOTH  # noqa: E402
from mnc_core.engine.metrics import oriented  # noqa: E402
from mnc_core.engine.predict import Fold, fold_train_scores, predict_folds  # noqa: E402
from mnc_core.engine.protocols import (  # noqa: E402
    _folds,
    fold_prior_parts,
    leave_one_out,
    prior_shares,
)
from mnc_core.kb.importers.common import column_key  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
RESULTS = Path(__file__).resolve().parent / "results"
ONE_SHOT = ("mnc", "mnc-features-only", "mnc-graph-only", "overall", "initial", "direct",
            "random")
# the sequential prior's baseline view alone, as a static order (score_posterior.
# feature_regression: the models' z-scores regressed on the dataset features; the mean
# z-scores where the KB has none)
REGRESSION = "feature-regression"
METHODS = (*ONE_SHOT, REGRESSION, "mnc-seq", "collaborative")
DECISION_KEYS = ("fine_tunings_to_near_best", "regret@1", "regret@3", "regret@5", "hit@1")


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


def cached(path: Path | None, compute):
    """`compute()`'s JSON-able result, read from `path` when a rerun finds it there."""
    if path is not None and path.exists():
        return json.loads(path.read_text())
    out = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))
    return out


def write_report(out: Path, report: dict, texts: list[str]) -> None:
    """A benchmark's JSON at `out` and its printed tables beside it (`.txt`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    out.with_suffix(".txt").write_text("\n\n".join(texts) + "\n")


def predictions(kb, name, targets, seed, cache: Path | None) -> dict:
    """target -> M&C's leave-one-out goodness per model (the sequential prior)."""

    def compute():
        folds, _ = _folds(kb, kb.edges, targets or list(kb.datasets), prefix="loo")
        pred = predict_folds(kb, folds, None, seed, {"mnc": BOTH})["mnc"]
        return {f.target: pred[f.key].table["goodness"].astype(float).to_dict() for f in folds}

    path = cache / f"goodness_{name}_{seed}.json" if cache else None
    return {t: pd.Series(g) for t, g in cached(path, compute).items()}


def one_shot_rows(kb, name, targets, seed, cache: Path | None) -> dict:
    """{method: {target: decision row}} of leave_one_out (M&C, ablations, baselines)."""

    def compute():
        methods = leave_one_out(kb, None, seed, targets)["methods"]
        return {m: {t: {k: row.get(k) for k in DECISION_KEYS}
                    for t, row in methods[m]["per_dataset"].items()} for m in ONE_SHOT}

    return cached(cache / f"loo_{name}_{seed}.json" if cache else None, compute)


def feature_kernel(kb, models: list[str]) -> np.ndarray:
    """Cosine similarity of the models' standardised features (sensitivity
    `--feature-kernel`: models alike in features covary a priori)."""
    features = kb.model_features.reindex(models).astype(float)
    features = features.loc[:, features.std() > 0]
    z = ((features - features.mean()) / features.std()).fillna(0.0).to_numpy()
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    unit = z / np.where(norms == 0, 1.0, norms)
    return unit @ unit.T


def own_sources(kb) -> dict[str, str]:
    """model -> the KB dataset it was pre-trained on, read from the importers' one-hot
    `source_<name>` model features (PARC, TransferGraph; none in the demo KB)."""
    originals = {}
    if kb.id_map is not None:
        names = kb.id_map[kb.id_map["kind"] == "dataset"]
        originals = dict(zip(names["id"], names["original"], strict=True))
    sources = {}
    for dataset in kb.datasets:
        column = f"source_{column_key(originals.get(dataset, dataset))}"
        if column in kb.model_features.columns:
            hits = kb.model_features.index[kb.model_features[column] == 1]
            sources |= dict.fromkeys(map(str, hits), dataset)
    return sources


def own_source_best(train: pd.DataFrame, sources: dict[str, str], hib: bool) -> pd.DataFrame:
    """`train` (dataset x model) with each missing (own source, model) score set to that
    dataset's best score (`--own-source-best`)."""
    filled = train.copy()
    for model, dataset in sources.items():
        if dataset in filled.index and model in filled.columns and pd.isna(
                filled.at[dataset, model]):
            row = filled.loc[dataset]
            filled.at[dataset, model] = row.max() if hib else row.min()
    return filled


def own_source_check(kb, sources: dict[str, str]) -> str:
    """Where the KB holds a model's score on its own pre-training dataset: how high it
    ranks there (the assumption of `--own-source-best` is that it is the best)."""
    scores = kb.score_matrix()
    held = [(m, d) for m, d in sources.items() if pd.notna(scores.at[d, m])]
    if not held:
        return (f"own-source check: {len(sources)} models pre-trained on a KB dataset, "
                "none scored there (the assumption cannot be checked on this KB)")
    rows = [(m, oriented(scores.loc[d], kb.higher_is_better)) for m, d in held]
    share = [float(row.rank(pct=True)[m]) for m, row in rows]
    best = sum(row.idxmax() == m for m, row in rows)
    return (f"own-source check: {len(held)} of {len(sources)} models pre-trained on a KB "
            f"dataset are scored there: percentile median {np.median(share):.2f} "
            f"(min {min(share):.2f}), the dataset's best in {best}")


def rows_for(kb, goodness: dict, one_shot: dict, prior_share: float | str = "fitted",
             kernel_weight: float = 0.0, own_source: bool = False) -> dict[str, dict[str, dict]]:
    hib = kb.higher_is_better
    rows: dict[str, dict[str, dict]] = {m: dict(one_shot[m]) for m in ONE_SHOT}
    rows |= {REGRESSION: {}, "mnc-seq": {}, "collaborative": {}}
    folds = {t: Fold(key=t, target=t, known_edges=kb.edges) for t in goodness}
    parts = {t: fold_prior_parts(kb, folds[t], g) for t, g in goodness.items()}
    if prior_share == "fitted":  # as the sequential protocol: fitted on the other targets
        shares = prior_shares(kb, list(folds.values()), parts)
    else:
        shares = dict.fromkeys(goodness, float(prior_share))
    sources = own_sources(kb) if own_source else {}
    for target, prior in goodness.items():
        train = fold_train_scores(kb, folds[target])
        fold_parts = parts[target]
        if own_source:  # the share stays fitted on the KB's own scores, as before
            train = own_source_best(train, sources, hib)
            fold_parts = gaussian.prior_parts(train, hib, prior, kb.dataset_features, target)
        truth = folds[target].target_edges().set_index("model")["score"]
        eps, _ = target_terms(kb, target, truth)
        # with the kernel, the mnc order is simulated below, on the kernel's posterior
        orders = seq.sequential_fold_orders(train, truth, hib, lambda b: kb_epsilon(kb, b),
                                            None if kernel_weight else fold_parts,
                                            prior_share=shares[target])
        if kernel_weight:
            post = gaussian.posterior_of(fold_parts, hib, lambda b: kb_epsilon(kb, b),
                                         shares[target])
            post = replace(post, cov=post.cov + kernel_weight * feature_kernel(kb, post.models))
            orders["mnc"] = seq.sequential_order(
                partial(gaussian.next_scores, post), post.models, truth)
        rows["mnc-seq"][target] = order_decisions(orders["mnc"], truth, hib, eps) | {
            "prior_share": shares[target]}
        rows["collaborative"][target] = order_decisions(orders["collaborative"], truth, hib, eps)
        baseline = pd.Series(fold_parts.baseline, index=fold_parts.models)
        rows[REGRESSION][target] = order_decisions(order_of(baseline), truth, hib, eps)
        # the prior is the one-shot M&C ranking of leave_one_out (same folds and seed)
        mine = order_decisions(order_of(prior), truth, hib, eps)["fine_tunings_to_near_best"]
        assert mine == rows["mnc"][target]["fine_tunings_to_near_best"], target
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
            cells = [[r[method].get(t, {}).get(metric) for t in targets] for r in per_seed]
            if any(v is None for row in cells for v in row):
                continue  # the method does not apply (initial without scores before)
            values = np.array(cells, dtype=float)
            entry = {"mean": float(values.mean()),
                     "per_seed": [round(float(v), 4) for v in values.mean(axis=1)],
                     "median": float(np.median(values.mean(axis=0))),
                     "max": float(values.mean(axis=0).max())}
            if method != "overall":
                entry["diff_to_overall_ci95"] = bootstrap((values - base).mean(axis=0))
            out[metric][method] = entry
    return out


LINES: list[str] = []


def say(line: str) -> None:
    print(line, flush=True)
    LINES.append(line)


def fmt(ci) -> str:
    return "" if ci is None else f"[{ci[0]:+.3g}, {ci[1]:+.3g}]"


def compare(name: str, per_seed: list[dict], other: dict | None, path: Path) -> None:
    """mnc-seq's paired difference (this run minus `path`'s) per metric: mean over targets
    (seeds averaged per target), 95 % bootstrap interval, targets better / worse."""
    if other is None:
        say(f"compare: {path} has no {name}")
        return
    theirs = other["per_seed_rows"]
    for metric in ("fine_tunings_to_near_best", "regret@1", "regret@3"):
        targets = list(per_seed[0]["mnc-seq"])
        diff = np.array([[r["mnc-seq"][t][metric] - o["mnc-seq"][t][metric] for t in targets]
                         for r, o in zip(per_seed, theirs, strict=True)]).mean(axis=0)
        low, high = bootstrap(diff)
        say(f"mnc-seq minus {path.name}, {metric}: {diff.mean():+.4f} [{low:+.4f}, {high:+.4f}]"
            f"; better on {(diff < 0).sum()}, worse on {(diff > 0).sum()} of {len(diff)}")


def share_arg(text: str) -> float | str:
    """`--prior-share`: a number in [0, 1] or `fitted`."""
    if text == "fitted":
        return text
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--prior-share must lie in [0, 1], got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kbs", default="demo,tg,parc")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS / "engine_decisions.json")
    parser.add_argument("--prior-share", type=share_arg, default="fitted",
                        help="M&C's share of the sequential prior mean: 'fitted' (least "
                        "squares on the other targets' folds, as the sequential protocol "
                        "and the platform) or a fixed number (a sensitivity check)")
    parser.add_argument("--compare", type=Path,
                        help="another run's JSON: print mnc-seq's paired differences to it")
    parser.add_argument("--feature-kernel", type=float, default=0.0,
                        help="weight of a model-feature kernel added to the prior covariance "
                        "(a sensitivity check; 0 = the engine's posterior)")
    parser.add_argument("--own-source-best", action="store_true",
                        help="fill the missing scores of models on their own pre-training "
                        "dataset with its best (a sensitivity check of that assumption)")
    args = parser.parse_args()
    document = {}
    for name in args.kbs.split(","):
        if name in ("tg", "parc") and not SHARED.is_dir():
            say(f"{name}: {SHARED} absent, skipped")
            continue
        kb, targets = load_kb(name)
        per_seed = [rows_for(kb, predictions(kb, name, targets, s, args.cache),
                             one_shot_rows(kb, name, targets, s, args.cache), args.prior_share,
                             args.feature_kernel, args.own_source_best)
                    for s in range(args.seeds)]
        summary = summarise(per_seed)
        document[name] = {"seeds": args.seeds, "summary": summary, "per_seed_rows": per_seed}
        ft, r3 = summary["fine_tunings_to_near_best"], summary["regret@3"]
        r1 = summary["regret@1"]
        say(f"\n{name} ({args.seeds} seeds; regret in the KB's unit; one-shot methods: "
            "regret@k of the ranking, mnc-seq / collaborative: regret after k picks)")
        say(f"{'method':<18}{'ft-near mean':>13}{'ft med':>8}{'ft max':>8}{'CI diff':>22}"
            f"{'regret@1':>10}{'CI diff':>22}{'regret@3':>10}{'CI diff':>22}")
        for m in [m for m in METHODS if m in ft]:
            cis = [fmt(x[m].get("diff_to_overall_ci95")) for x in (ft, r1, r3)]
            say(f"{m:<18}{ft[m]['mean']:>13.2f}{ft[m]['median']:>8.1f}{ft[m]['max']:>8.1f}"
                f"{cis[0]:>22}{r1[m]['mean']:>10.4f}{cis[1]:>22}{r3[m]['mean']:>10.4f}"
                f"{cis[2]:>22}")
        goal_ft = ft["mnc-seq"]["mean"] <= 0.5 * ft["overall"]["mean"]
        goal_r3 = r3["mnc-seq"]["mean"] <= 0.7 * r3["overall"]["mean"]
        say(f"goal ft <= 0.5x Overall: {goal_ft} ({ft['mnc-seq']['mean']:.2f} vs "
              f"{0.5 * ft['overall']['mean']:.2f}); goal regret after 3 <= 0.7x Overall's "
              f"regret@3: {goal_r3} ({r3['mnc-seq']['mean']:.4f} vs "
              f"{0.7 * r3['overall']['mean']:.4f})")
        shares = [r["mnc-seq"][t]["prior_share"] for r in per_seed for t in r["mnc-seq"]]
        say(f"mnc-seq prior share: {min(shares):.2f} - {max(shares):.2f} over targets and seeds")
        if args.own_source_best:
            say(own_source_check(kb, own_sources(kb)))
        if args.compare is not None:
            compare(name, per_seed, json.loads(args.compare.read_text()).get(name), args.compare)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, default=float))
    args.out.with_suffix(".txt").write_text("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
