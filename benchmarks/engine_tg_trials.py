"""TransferGraph text: the third round of input trials of docs/engine.md, re-runnable.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/engine_tg_trials.py [--seeds 0,1,2,3]

Each trial adds inputs the engine does not have (they did not help enough to be
kept), by wrapping `inputs.pair_inputs` for the run, and reports the mean weighted
tau over the 8 published targets per seed and over the seeds:
- `reference`: the default M&C (as `engine_tg_quality.py`'s `mnc`);
- `source`: `pair:source_is_dataset` (the model was itself fine-tuned on the row's
  dataset, per `model_config_dataset.csv`) and `pair:source_similarity` (that
  source's similarity to the row's dataset, 1 for itself);
- `logme`, `logme+regh`, `features+logme`, `features+logme+regh`: the
  transferability scores' ranks on the row's dataset as inputs (LogME through the
  engine's own `use_score_before`, Reg-H-Score patched in), with all input groups or
  without the graph group;
- `weighted`, `features+logme+regh+weighted`: training rows weighted
  1/(1 + position in their task)^0.5;
- `graph-logme`, `graph-logme+logme`: the target's LogME scores as model-dataset
  edges of its fold graph (per-dataset min-max like accuracies), so Node2Vec+ places
  the new dataset near the models LogME favours (TransferGraph feeds transferability
  scores to its graph); without and with LogME as an input too.
Takes about 2 minutes per seed on 2 cores.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from contextlib import contextmanager

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from engine_tg_quality import TG_DIR, proxy_ranks, published  # noqa: E402

import mnc_core.engine.inputs as engine_inputs  # noqa: E402
import mnc_core.engine.predict as engine_predict  # noqa: E402
import mnc_core.engine.rankers as engine_rankers  # noqa: E402
from mnc_core.engine.embedding import embed_graphs  # noqa: E402
from mnc_core.engine.graph import build_matching_graph, distance_similarity  # noqa: E402
from mnc_core.engine.inputs import BOTH, FEATURES_ONLY, InputGroups  # noqa: E402
from mnc_core.engine.metrics import dataset_metrics, normalised_ranks  # noqa: E402
from mnc_core.engine.predict import (  # noqa: E402
    EngineSettings,
    Fold,
    fit_and_predict,
    fold_context,
    fold_graph,
)
from mnc_core.ids import slugify  # noqa: E402
from mnc_core.kb.importers.transfergraph import import_transfergraph  # noqa: E402

Extra = Callable[[pd.DataFrame, str], pd.DataFrame]


def model_sources(kb) -> pd.Series:
    """Each KB model's source dataset (what it was fine-tuned on before), slugified."""
    config = pd.read_csv(TG_DIR / "model_config_dataset.csv").drop_duplicates("model")
    by_model = {slugify(m): d for m, d in zip(config["model"], config["dataset"], strict=True)}
    return pd.Series({m: slugify(by_model[m]) if isinstance(by_model.get(m), str) else None
                      for m in kb.models})


def source_effect(kb) -> None:
    """Print, per dataset, how models fine-tuned on it before rank there vs the others."""
    source = model_sources(kb)
    ranks = normalised_ranks(kb.score_matrix(), kb.higher_is_better)
    print("dataset: models whose source it is (n), their mean rank there vs the others'"
          " (0 = best), and vs their own mean rank on the other datasets")
    for dataset in ranks.index:
        row = ranks.loc[dataset].dropna()
        same = row[source.reindex(row.index) == dataset]
        if same.empty:
            continue
        record = ranks.drop(index=dataset)[same.index].mean()
        others = row.drop(same.index).mean()
        print(f"  {dataset:<24} n={len(same):<3} {same.mean():.2f} vs {others:.2f};"
              f" their record {record.mean():.2f}")


def source_inputs(kb) -> Extra:
    """Columns saying whether, and how closely, the model's source is the row's dataset."""
    source = model_sources(kb)
    d = kb.dataset_distances
    similarity = {}
    for a, b, s in zip(d["dataset_a"], d["dataset_b"], distance_similarity(d["distance"]),
                       strict=True):
        similarity[a, b] = similarity[b, a] = s

    def add(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
        mine = source.reindex(table.index)
        table["pair:source_is_dataset"] = (mine == dataset).astype(float).to_numpy()
        table["pair:source_similarity"] = [
            1.0 if s == dataset else similarity.get((s, dataset), np.nan) for s in mine
        ]
        return table

    return add


def regh_inputs() -> Extra:
    """The model's normalised Reg-H-Score rank on the row's dataset (NaN where unknown)."""
    ranks = proxy_ranks(import_transfergraph(TG_DIR, score_before="reg-h-score").kb)

    def add(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
        known = dataset in ranks.index
        table["model:regh_rank"] = ranks.loc[dataset].reindex(table.index).to_numpy() \
            if known else np.nan
        return table

    return add


def logme_edge_graph(kb, fold: Fold):
    """The fold graph plus the target's LogME scores as model-dataset edges."""
    before = kb.edges[(kb.edges["dataset"] == fold.target) & kb.edges["score_before"].notna()]
    before = before[["model", "dataset", "score_before"]].rename(columns={"score_before": "score"})
    edges = pd.concat([fold.training_edges()[["model", "dataset", "score"]], before])
    return build_matching_graph(
        kb.models, kb.datasets, edges, kb.dataset_distances, kb.higher_is_better
    )


@contextmanager
def patched(extra: Extra | None, weighted: bool):
    """Run with `extra` columns on every input row and/or position-weighted rows."""
    plain_inputs, plain_fit = engine_inputs.pair_inputs, engine_rankers.ClassRanker.fit

    def pair_inputs(context, dataset, groups, recipe=None):
        return extra(plain_inputs(context, dataset, groups, recipe), dataset)

    def weighted_fit(self, inputs, targets, n_classes):
        from catboost import CatBoostClassifier

        position = targets.groupby("dataset")["norm_rank"].rank(method="first") - 1
        self.model = CatBoostClassifier(loss_function="MultiClass",
                                        **self.settings.params(self.seed))
        self.model.fit(inputs.to_numpy(), targets["rank_class"].to_numpy(),
                       sample_weight=1.0 / np.sqrt(1.0 + position.to_numpy()))
        return self

    if extra is not None:
        engine_inputs.pair_inputs = engine_predict.pair_inputs = pair_inputs
    if weighted:
        engine_rankers.ClassRanker.fit = weighted_fit
    try:
        yield
    finally:
        engine_inputs.pair_inputs = engine_predict.pair_inputs = plain_inputs
        engine_rankers.ClassRanker.fit = plain_fit


def trials(kb) -> dict[str, tuple[InputGroups, bool, Extra | None, bool, bool]]:
    """name: (input groups, LogME as input, extra columns, weighted rows, LogME edges)."""
    regh = regh_inputs()
    return {
        "reference": (BOTH, False, None, False, False),
        "source": (BOTH, False, source_inputs(kb), False, False),
        "logme": (BOTH, True, None, False, False),
        "logme+regh": (BOTH, True, regh, False, False),
        "features+logme": (FEATURES_ONLY, True, None, False, False),
        "features+logme+regh": (FEATURES_ONLY, True, regh, False, False),
        "weighted": (BOTH, False, None, True, False),
        "features+logme+regh+weighted": (FEATURES_ONLY, True, regh, True, False),
        "graph-logme": (BOTH, False, None, False, True),
        "graph-logme+logme": (BOTH, True, None, False, True),
    }


def run_seed(kb, runs: dict, seed: int) -> dict[str, float]:
    """Mean weighted tau over the published targets of every trial, for one seed."""
    targets, _ = published()
    settings = EngineSettings()
    folds = [Fold(key=t, target=t, known_edges=kb.edges) for t in targets]
    graphs = {f.key: fold_graph(kb, f) for f in folds}
    if any(run[4] for run in runs.values()):
        graphs |= {f"{f.key}+logme": logme_edge_graph(kb, f) for f in folds}
    vectors = embed_graphs(graphs, settings.node2vec, seed)
    out = {}
    for name, (groups, logme, extra, weighted, logme_edges) in runs.items():
        taus = []
        with patched(extra, weighted):
            for fold in folds:
                key = f"{fold.key}+logme" if logme_edges else fold.key
                context = fold_context(kb, fold, vectors[key], use_score_before=logme)
                goodness = fit_and_predict(context, fold.target, groups, settings, seed).goodness
                truth = fold.target_edges().set_index("model")["score"]
                taus.append(dataset_metrics(goodness, truth, True, None)["wtau"])
        out[name] = float(np.mean(taus))
        print(f"seed {seed}  {name:<30} {out[name]:.3f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds")
    parser.add_argument("--only", help="comma-separated trial names (default: all)")
    args = parser.parse_args()
    if not TG_DIR.is_dir():
        raise SystemExit(f"{TG_DIR} absent: nothing to run")
    kb = import_transfergraph(TG_DIR, score_before="logme").kb
    source_effect(kb)
    runs = trials(kb)
    if args.only:
        runs = {name: runs[name] for name in args.only.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = [run_seed(kb, runs, seed) for seed in seeds]
    print(f"\nmean weighted tau over seeds {args.seeds}:")
    for name in runs:
        values = [row[name] for row in per_seed]
        print(f"  {name:<30} {np.mean(values):.3f}  (per seed: {np.round(values, 3).tolist()})")


if __name__ == "__main__":
    main()
