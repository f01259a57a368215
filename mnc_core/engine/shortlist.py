"""Shortlist with calibrated confidence and cost (`mnc rank --shortlist`).

Per model, the probability of being near-best (within `decisions.near_best_epsilon`
of the true best) on the new dataset, calibrated on leave-one-out: every dataset of
the KB in turn is predicted as new by M&C, each model's predicted position becomes a
raw confidence `1 - (rank - 1) / (n - 1)`, and an isotonic regression maps it to the
observed near-best frequency. Reliability is reported cross-fitted (each dataset's
probabilities from an isotonic fit on the other datasets): Brier score and expected
calibration error (`ECE_BINS` equal-width bins).

Shortlist: the models in order (predicted rank, or with `by_cost` expected gain per
GPU hour: probability / cost) until the probability that the shortlist holds a
near-best model reaches `target` (default 0.9). Most datasets have a single near-best
model, so the near-best events of different models are close to exclusive and the
shortlist's probability is the sum of its models' probabilities, capped at 1.
Cost of a model: the median of its known fine-tuning costs (KB `cost`, GPU hours) over
the KB's datasets, else the KB's median cost; no costs in the KB = no cost figures.

A calibration is stored as plain JSON (`calibration_to_json` / `calibration_from_json`):
the isotonic map's thresholds, the leave-one-out positions of the first near-best
model, the reliability figures, a binned reliability curve and the leave-one-out
points themselves (dataset, raw confidence, near-best outcome), from which
`calibration_for` refits the map without one dataset. `near_best_from_raw`
applies the stored map exactly as `IsotonicRegression.predict` does (linear
interpolation between thresholds, clipped outside them), so a long-running service
(the platform's recommendations) reads a calibration without re-running the
leave-one-out and without unpickling anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mnc_core.engine.decision_defaults import SHORTLIST_TARGET
from mnc_core.engine.decisions import kb_epsilon
from mnc_core.engine.score_posterior import SHARE_COLUMNS

ECE_BINS = 10
DEFAULT_TARGET = SHORTLIST_TARGET
CALIBRATION_FORMAT = 1  # version of the JSON written by `calibration_to_json`
POINT_COLUMNS = ("dataset", "raw", "near")  # one leave-one-out point: a (dataset, model) pair
# A point may also carry SHARE_COLUMNS, its least-squares terms for the sequential
# prior's share (score_posterior.share_terms); absent in calibrations written before.


def raw_confidence(rank: pd.Series) -> pd.Series:
    """Predicted rank (1 = best) -> 1 - (rank - 1) / (n - 1), in [0, 1]."""
    n = len(rank)
    return 1.0 - (rank.astype(float) - 1.0) / max(n - 1, 1)


def near_best_labels(kb, dataset: str) -> pd.Series:
    """model -> 1.0 when within epsilon of the dataset's true best (known models only)."""
    truth = kb.edges[kb.edges["dataset"] == dataset].set_index("model")["score"].astype(float)
    best = truth.max() if kb.higher_is_better else truth.min()
    epsilon = kb_epsilon(kb, best)
    near = truth >= best - epsilon - 1e-12 if kb.higher_is_better else (
        truth <= best + epsilon + 1e-12)
    return near.astype(float)


def calibration_pairs(kb, settings=None, seed: int = 0, exclude: str | None = None
                      ) -> pd.DataFrame:
    """Leave-one-out (dataset, model, raw, near, share_num, share_den) pairs of the KB's
    M&C predictions (every dataset but `exclude`); the share terms fit the sequential
    prior's share on the same predictions (`calibrated_prior_share`)."""
    from mnc_core.engine.inputs import BOTH
    from mnc_core.engine.predict import predict_folds
    from mnc_core.engine.protocols import _folds, fold_prior_parts, fold_share_terms

    targets = [d for d in kb.datasets if d != exclude]
    folds, _ = _folds(kb, kb.edges, targets, prefix="cal")
    predictions = predict_folds(kb, folds, settings, seed, {"mnc": BOTH})["mnc"]
    rows = []
    for fold in folds:
        table = predictions[fold.key].table
        labels = near_best_labels(kb, fold.target)
        raw = raw_confidence(table["rank"])
        parts = fold_prior_parts(kb, fold, table["goodness"])
        terms = fold_share_terms(kb, fold, parts).reindex(labels.index).fillna(0.0)
        for model, label in labels.items():
            rows.append((fold.target, model, float(raw[model]), float(label),
                         *(float(terms.at[model, c]) for c in SHARE_COLUMNS)))
    return pd.DataFrame(rows, columns=["dataset", "model", "raw", "near", *SHARE_COLUMNS])


def _isotonic(raw: np.ndarray, near: np.ndarray):
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True,
                              out_of_bounds="clip").fit(raw, near)


def brier(probability: np.ndarray, outcome: np.ndarray) -> float:
    """Mean squared difference of probabilities and 0/1 outcomes."""
    return float(np.mean((np.asarray(probability) - np.asarray(outcome)) ** 2))


def reliability_curve(probability: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS
                      ) -> list[dict]:
    """Per non-empty bin of `bins` equal-width bins of [0, 1] (1.0 falls in the last):
    mean probability, observed frequency, count (the points of a reliability diagram;
    on the diagonal = calibrated; `ece` weighs their gaps)."""
    p, y = np.asarray(probability, float), np.asarray(outcome, float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    return [{"bin": b, "probability": float(p[index == b].mean()),
             "frequency": float(y[index == b].mean()), "count": int((index == b).sum())}
            for b in range(bins) if (index == b).any()]


def ece(probability: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: bin-size-weighted |mean probability - frequency|,
    over `bins` equal-width bins of [0, 1] (1.0 falls in the last bin): the gaps of
    `reliability_curve`'s points, weighted by their counts."""
    total = len(np.asarray(probability))
    return float(sum(point["count"] / total * abs(point["probability"] - point["frequency"])
                     for point in reliability_curve(probability, outcome, bins)))


def calibrate(pairs: pd.DataFrame) -> dict:
    """The isotonic map fitted on every pair, and its cross-fitted reliability."""
    model = _isotonic(pairs["raw"].to_numpy(), pairs["near"].to_numpy())
    crossed = np.zeros(len(pairs))
    for dataset in pairs["dataset"].unique():
        held = (pairs["dataset"] == dataset).to_numpy()
        if (~held).sum() == 0:
            continue
        fit = _isotonic(pairs["raw"].to_numpy()[~held], pairs["near"].to_numpy()[~held])
        crossed[held] = fit.predict(pairs["raw"].to_numpy()[held])
    outcome = pairs["near"].to_numpy()
    return {"map": model, "x_thresholds": model.X_thresholds_.astype(float),
            "y_thresholds": model.y_thresholds_.astype(float),
            "first_near_best": _first_near_best(pairs),
            "brier": brier(crossed, outcome), "ece": ece(crossed, outcome),
            "pairs": int(len(pairs)), "datasets": int(pairs["dataset"].nunique()),
            "reliability_curve": reliability_curve(crossed, outcome),
            "points": pairs[[c for c in (*POINT_COLUMNS, *SHARE_COLUMNS)
                             if c in pairs.columns]].reset_index(drop=True)}


def _first_near_best(pairs: pd.DataFrame) -> list[int]:
    """Per dataset, the leave-one-out position of its first near-best model."""
    firsts = []
    for _, rows in pairs.groupby("dataset"):
        ordered = rows.sort_values("raw", ascending=False, kind="stable")["near"].to_numpy()
        firsts.append(int(np.argmax(ordered)) + 1)
    return firsts


def calibration_to_json(calibration: dict) -> dict:
    """`calibrate`'s result as plain JSON types (the isotonic map by its thresholds)."""
    model, points = calibration["map"], calibration["points"]
    return {
        "format": CALIBRATION_FORMAT,
        "x_thresholds": [float(v) for v in model.X_thresholds_],
        "y_thresholds": [float(v) for v in model.y_thresholds_],
        "first_near_best": [int(v) for v in calibration["first_near_best"]],
        **{k: calibration[k] for k in ("brier", "ece", "pairs", "datasets")},
        "reliability_curve": list(calibration.get("reliability_curve", [])),
        "points": {"dataset": [str(v) for v in points["dataset"]],
                   **{c: [float(v) for v in points[c]]
                      for c in ("raw", "near", *SHARE_COLUMNS) if c in points.columns}},
        "prior_share": calibrated_prior_share(calibration),
    }


def calibration_from_json(document: dict) -> dict:
    """A stored calibration, checked (ValueError naming what is wrong); the thresholds
    as arrays under `x_thresholds` / `y_thresholds`, ready for `near_best_from_raw`."""
    if not isinstance(document, dict):
        raise ValueError(f"calibration: a JSON object expected, not {type(document).__name__}")
    if document.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"calibration format {document.get('format')!r} is not "
                         f"{CALIBRATION_FORMAT} (re-run the calibration)")
    x = np.asarray(document.get("x_thresholds", []), dtype=float)
    y = np.asarray(document.get("y_thresholds", []), dtype=float)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"calibration thresholds: {len(x)} x and {len(y)} y values "
                         "(need the same number, at least one)")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(np.diff(x) < 0) \
            or np.any(np.diff(y) < 0) or y.min() < 0.0 or y.max() > 1.0:
        raise ValueError("calibration thresholds must be finite and non-decreasing, "
                         "probabilities within [0, 1]")
    return {**document, "x_thresholds": x, "y_thresholds": y,
            "first_near_best": [int(v) for v in document.get("first_near_best", [])],
            "points": _points_from_json(document.get("points"))}


def _points_from_json(points: dict | None) -> pd.DataFrame | None:
    """The stored leave-one-out points (None in a calibration written before they were
    stored: it can only be used whole)."""
    if points is None:
        return None
    shares = [c for c in SHARE_COLUMNS if c in points]
    if len(shares) == 1:
        raise ValueError("calibration points: share_num and share_den must both be there")
    lengths = {len(points.get(c, [])) for c in (*POINT_COLUMNS, *shares)}
    if len(lengths) != 1:
        raise ValueError(f"calibration points: columns of different lengths {sorted(lengths)}")
    frame = pd.DataFrame({c: points[c] for c in (*POINT_COLUMNS, *shares)})
    for column in ("raw", "near", *shares):
        frame[column] = frame[column].astype(float)
    if not (frame["raw"].between(0, 1).all() and frame["near"].isin([0.0, 1.0]).all()):
        raise ValueError("calibration points: raw confidences must lie in [0, 1] and "
                         "outcomes be 0 or 1")
    if shares and not (np.isfinite(frame[shares].to_numpy()).all()
                       and (frame["share_den"] >= 0).all()):
        raise ValueError("calibration points: share terms must be finite, share_den >= 0")
    return frame


def calibrated_prior_share(calibration: dict) -> float:
    """M&C's share of the sequential prior mean fitted on the calibration's leave-one-out
    points (`score_posterior.fit_prior_share`); its default without share terms (a
    calibration written before they were stored). Use `calibration_for` first so that a
    dataset's own results never fit its share."""
    from mnc_core.engine import score_posterior as gaussian

    points = calibration.get("points")
    if points is None or not set(SHARE_COLUMNS) <= set(points.columns):
        return gaussian.PRIOR_SHARE
    return gaussian.fit_prior_share([points[list(SHARE_COLUMNS)]])


def calibration_for(calibration: dict, dataset: str) -> dict:
    """The calibration without `dataset`'s own leave-one-out points, so that a dataset's
    own results never calibrate its probabilities: the map and the first near-best
    positions refitted (one isotonic regression, no model fit) when the stored
    calibration holds points of it and of another dataset; the calibration itself
    otherwise. The reliability figures stay those of the whole leave-one-out."""
    points = calibration.get("points")
    if points is None or not (points["dataset"] == dataset).any():
        return calibration
    rest = points[points["dataset"] != dataset]
    if rest.empty:
        return calibration
    model = _isotonic(rest["raw"].to_numpy(), rest["near"].to_numpy())
    return {**calibration, "x_thresholds": model.X_thresholds_.astype(float),
            "y_thresholds": model.y_thresholds_.astype(float),
            "first_near_best": _first_near_best(rest), "points": rest}


def near_best_from_raw(calibration: dict, raw) -> np.ndarray:
    """The stored isotonic map at `raw` confidences: `IsotonicRegression.predict` with
    `out_of_bounds="clip"` is linear interpolation between the thresholds, held flat
    outside them, which is what `np.interp` does."""
    return np.interp(np.asarray(raw, dtype=float), calibration["x_thresholds"],
                     calibration["y_thresholds"])


def model_costs(kb) -> pd.Series | None:
    """model -> GPU hours of one fine-tuning (median over the KB's datasets); None if no costs."""
    costs = kb.edges.groupby("model")["cost"].median().reindex(kb.models)
    if costs.isna().all():
        return None
    return costs.fillna(float(kb.edges["cost"].median()))


def shortlist(
    table: pd.DataFrame, probability: pd.Series, costs: pd.Series | None = None,
    target: float = DEFAULT_TARGET, by_cost: bool = False,
    first_near_best: list[int] | None = None,
) -> dict:
    """The smallest prefix of the order whose near-best probability reaches `target`.

    `table`: `rank_new_dataset`'s frame (index model, column rank); `probability`:
    model -> calibrated near-best probability. Returns the order used, the shortlist,
    its probability (sum capped at 1), and with costs its GPU hours and those saved
    against fine-tuning every model.
    """
    order = table.sort_values("rank").index.tolist()
    if by_cost:
        if costs is None:
            raise ValueError("cost-aware ordering needs fine-tuning costs (KB column cost)")
        gain = probability.reindex(order) / costs.reindex(order).clip(lower=1e-9)
        order = gain.sort_values(ascending=False, kind="stable").index.tolist()
    chosen, total = [], 0.0
    for model in order:
        chosen.append(model)
        if first_near_best and not by_cost:
            total = float(np.mean(np.asarray(first_near_best) <= len(chosen)))
        else:
            total = min(1.0, total + float(probability.get(model, 0.0)))
        if total >= target:
            break
    out = {"target": target, "ordered_by": "gain_per_gpu_hour" if by_cost else "rank",
           "models": chosen, "probability": total, "reached": total >= target}
    if costs is not None:
        out["gpu_hours"] = float(costs.reindex(chosen).sum())
        out["gpu_hours_all"] = float(costs.reindex(order).sum())
        out["gpu_hours_saved"] = out["gpu_hours_all"] - out["gpu_hours"]
    return out


def shortlist_for(kb, dataset, table, settings=None, seed=0, target=DEFAULT_TARGET,
                  by_cost=False) -> dict:
    """Calibrate on the KB's leave-one-out (the dataset itself left out of the pairs)
    and build `dataset`'s shortlist from `rank_new_dataset`'s `table`."""
    pairs = calibration_pairs(kb, settings, seed, exclude=dataset)
    if pairs.empty:
        raise ValueError("no other dataset to calibrate the near-best probabilities on")
    return shortlist_from_calibration(kb, dataset, table, calibrate(pairs), target, by_cost)


def shortlist_from_calibration(kb, dataset: str, table: pd.DataFrame, calibration: dict,
                               target: float = DEFAULT_TARGET, by_cost: bool = False) -> dict:
    """`dataset`'s shortlist from a calibration (`calibrate`'s, or a stored one read by
    `calibration_from_json`), its own leave-one-out points left out (`calibration_for`),
    with each model's near-best probability, the reliability and, with costs, each
    model's GPU hours."""
    calibration = calibration_for(calibration, dataset)
    raw = raw_confidence(table["rank"]).to_numpy()
    probability = pd.Series(near_best_from_raw(calibration, raw), index=table.index)
    costs = model_costs(kb)
    result = shortlist(table, probability, costs, target, by_cost,
                       calibration["first_near_best"] or None)
    result["reliability"] = {k: calibration[k] for k in ("brier", "ece", "pairs", "datasets")}
    result["near_best_probability"] = {m: float(p) for m, p in probability.items()}
    if costs is not None:
        result["cost"] = {m: float(c) for m, c in costs.items()}
    return result


def calibration_document(kb, settings=None, seed: int = 0) -> dict:
    """The KB's calibration as the JSON document the platform stores and `mnc calibrate`
    writes (`calibration_to_json`, plus the ranker, seed and number of models it was
    fitted with, so that a reader can tell a stale one); ValueError when no dataset can
    be left out."""
    from mnc_core.engine.predict import EngineSettings

    pairs = calibration_pairs(kb, settings, seed)
    if pairs.empty:
        raise ValueError("no dataset of the knowledge can be left out for calibration (each "
                         "needs known edges and another dataset to learn from)")
    ranker = (settings or EngineSettings()).ranker
    return {**calibration_to_json(calibrate(pairs)), "ranker": ranker, "seed": seed,
            "models": len(kb.models)}


def read_calibration_file(path: Path) -> dict:
    """A calibration document from `path`, checked (`calibration_from_json`); a
    ValueError naming the file when it is not one (a missing file: OSError)."""
    from mnc_core.textfiles import read_text

    try:  # JSONDecodeError is a ValueError
        return calibration_from_json(json.loads(read_text(path)))
    except ValueError as err:
        raise ValueError(f"{path}: not a near-best calibration ({err})") from err


def stale_calibration(calibration: dict, kb, ranker: str, seed: int) -> list[str]:
    """Why a stored calibration may not fit this KB and ranking (empty: nothing seen)."""
    reasons = []
    if calibration.get("models") not in (None, len(kb.models)):
        reasons.append(f"it was fitted on {calibration['models']} models, the KB has "
                       f"{len(kb.models)}")
    if calibration.get("ranker") not in (None, ranker):
        reasons.append(f"it was fitted with ranker {calibration['ranker']}, not {ranker}")
    if calibration.get("seed") not in (None, seed):
        reasons.append(f"it was fitted with seed {calibration['seed']}, not {seed}")
    points = calibration.get("points")
    if points is not None:
        unknown = sorted(set(points["dataset"]) - set(kb.datasets))
        if unknown:
            reasons.append(f"{len(unknown)} of its datasets are not in the KB "
                           f"(e.g. {unknown[0]})")
    return reasons
