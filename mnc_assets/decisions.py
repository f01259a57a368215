"""Decisions from the ranking: the near-best calibration every recommendation reads.

`near_best_calibration` runs the engine's leave-one-out calibration
(`mnc_core.engine.shortlist.calibration_document`: what `mnc calibrate` writes and
`mnc rank --shortlist` runs per call without `--calibration`) once on the current
knowledge and stores it as plain JSON (`DataLayout.calibration_path`). It is the
expensive part (a leave-one-out over the knowledge: tens of seconds to minutes), so it
is an asset of its own: a recommendation reads the stored map in milliseconds (the
landing sensor's goal is a recommendation within ~30 s of a dataset landing) instead
of recalibrating for every dataset.
Like the graph and the ranker it follows the knowledge automatically, only while the
FID edges' blocking check passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from mnc_assets.knowledge import AFTER_CHECKS, CURRENT, knowledge_base
from mnc_assets.metadata import markdown_table, plot_markdown, reliability
from mnc_resources import ArtifactStore, EngineConfig

GROUP = "selection"


@dg.asset(group_name=GROUP, deps=[knowledge_base], automation_condition=AFTER_CHECKS,
          kinds={"catboost", "sklearn"})
def near_best_calibration(artifacts: ArtifactStore, engine: EngineConfig):
    """The isotonic map from a model's predicted position to its probability of being
    near-best, fitted on the leave-one-out of the current knowledge (Brier, ECE)."""
    from mnc_core.engine.report import write_json
    from mnc_core.engine.shortlist import calibration_document
    from mnc_core.kb.store import read_kb

    kb = read_kb(artifacts.layout.knowledge_dir(CURRENT))
    try:
        document = calibration_document(kb, engine.settings(), engine.seed)
    except ValueError as err:
        raise dg.Failure(str(err)) from err
    path = artifacts.layout.calibration_path()
    write_json(document, path)  # atomically: readers never see a half-written file
    curve = pd.DataFrame(document["reliability_curve"])
    return dg.MaterializeResult(metadata={
        "brier": dg.MetadataValue.float(document["brier"]),
        "ece": dg.MetadataValue.float(document["ece"]),
        "pairs": document["pairs"], "datasets": document["datasets"],
        "prior_share": dg.MetadataValue.float(document["prior_share"]),
        "path": dg.MetadataValue.path(str(path)),
        "reliability": dg.MetadataValue.md(markdown_table(curve)),
        "reliability_plot": dg.MetadataValue.md(plot_markdown(
            reliability(curve), "near-best calibration: reliability (leave-one-out)")),
    })


def read_calibration(path: Path) -> dict | None:
    """The stored calibration, or None when `near_best_calibration` has not run yet."""
    from mnc_core.engine.shortlist import read_calibration_file

    if not path.is_file():
        return None
    try:
        return read_calibration_file(path)
    except ValueError as err:
        raise dg.Failure(f"the stored calibration is not usable ({err}): "
                         "re-materialise near_best_calibration") from err


@dataclass
class Decision:
    """What a recommendation decides beyond the ranking, per model (indexed like the
    ranking) and for the dataset; every per-model series may be all-null."""

    near_best_probability: pd.Series  # calibrated, one-shot (null without a calibration)
    in_shortlist: pd.Series  # bool or null
    cost_gpu_hours: pd.Series  # GPU hours of one fine-tuning (null without KB costs)
    next_order: pd.Series  # 1 = fine-tune next; null for tried models
    stop: bool
    shortlist: dict | None  # `shortlist.shortlist`'s result
    next_pick: dict | None  # `sequential.next_pick`'s result (known edges only)
    notes: list[str]


def decide(kb, dataset: str, table: pd.DataFrame, calibration: dict | None,
           engine: EngineConfig) -> Decision:
    """The shortlist from the stored calibration and, when the dataset already has known
    edges, the sequential update (`mnc next`) over the same ranking `table`.

    Without known edges the untried order is the ranking itself; with them the revealed
    scores condition the score posterior and reorder the untried models, and `stop` says whether
    the tried models are near-best with probability >= `engine.stop_probability`.
    """
    from mnc_core.engine.score_posterior import PRIOR_SHARE
    from mnc_core.engine.sequential import next_pick
    from mnc_core.engine.shortlist import (
        calibrated_prior_share,
        calibration_for,
        model_costs,
        shortlist_from_calibration,
    )

    models = table.index
    notes: list[str] = []
    costs = model_costs(kb)
    cost = (costs.reindex(models).astype(float) if costs is not None
            else pd.Series(float("nan"), index=models))
    if costs is None:
        notes.append("the knowledge has no fine-tuning costs: cost_gpu_hours is null")
    probability = pd.Series(float("nan"), index=models)
    member = pd.Series(pd.NA, index=models, dtype="boolean")
    short, share = None, PRIOR_SHARE
    if calibration is None:
        notes.append("no near_best_calibration materialised yet: near_best_probability and "
                     "in_shortlist are null (materialise near_best_calibration, then this)")
    else:
        calibration = calibration_for(calibration, dataset)  # never its own results
        share = calibrated_prior_share(calibration)
        short = shortlist_from_calibration(kb, dataset, table, calibration,
                                           engine.shortlist_target)
        probability = pd.Series(short["near_best_probability"]).reindex(models)
        member = pd.Series(models.isin(short["models"]), index=models, dtype="boolean")
    known = kb.edges[(kb.edges["dataset"] == dataset) & kb.edges["score"].notna()]
    pick = None
    if known.empty:
        order = table.sort_values("rank").index
        next_order = pd.Series(range(1, len(order) + 1), index=order, dtype="Int64")
        stop = False
    else:
        pick = next_pick(kb, dataset, engine.settings(), engine.seed,
                         stop_probability=engine.stop_probability, table=table,
                         prior_share=share)
        ranked = [c["model"] for c in pick["candidates"]]
        next_order = pd.Series(range(1, len(ranked) + 1), index=ranked, dtype="Int64")
        stop = pick["stop"]
    return Decision(probability, member, cost, next_order.reindex(models), bool(stop), short,
                    pick, notes)


def decision_metadata(decision: Decision, table: pd.DataFrame) -> dict[str, object]:
    """The shortlist, the next model and the stop flag as the UI shows them."""
    metadata: dict[str, object] = {"notes": "; ".join(decision.notes) or "none"}
    short = decision.shortlist
    if short is None:
        metadata["shortlist"] = "none: no near_best_calibration materialised yet"
    else:
        chosen = table.loc[short["models"]]
        shown = pd.DataFrame({
            "rank": chosen["rank"].astype(int).to_numpy(), "model": short["models"],
            "near_best_probability": decision.near_best_probability[short["models"]].to_numpy(),
            "cost_gpu_hours": decision.cost_gpu_hours[short["models"]].to_numpy()})
        metadata["shortlist"] = dg.MetadataValue.md(markdown_table(shown))
        metadata["shortlist_models"] = len(short["models"])
        metadata["shortlist_probability"] = dg.MetadataValue.float(short["probability"])
        metadata["shortlist_target"] = dg.MetadataValue.float(short["target"])
        metadata["shortlist_reached"] = bool(short["reached"])
        if "gpu_hours" in short:
            metadata["shortlist_gpu_hours"] = dg.MetadataValue.float(short["gpu_hours"])
            metadata["gpu_hours_saved"] = dg.MetadataValue.float(short["gpu_hours_saved"])
    untried = decision.next_order.dropna().sort_values()
    metadata["next_model"] = str(untried.index[0]) if len(untried) else "none"
    metadata["stop"] = decision.stop
    pick = decision.next_pick
    if pick is None:
        metadata["next_from"] = "the ranking (no known edge of this dataset yet)"
    else:
        metadata["next_from"] = (f"the sequential update on {len(pick['tried'])} known "
                                 f"edge(s), best tried {pick['best_tried']}")
        metadata["tried_near_best_probability"] = dg.MetadataValue.float(
            pick["tried_near_best_probability"])
        metadata["prior_share"] = dg.MetadataValue.float(pick["prior_share"])
        metadata["prior_baseline"] = pick["prior_baseline"]
        metadata["stop_reasons"] = "; ".join(pick["stop_reasons"]) or "none"
        if pick["candidates"]:
            metadata["next_candidates"] = dg.MetadataValue.md(markdown_table(
                pd.DataFrame(pick["candidates"]).rename(
                    columns={"near_best_probability": "posterior_near_best"})))
    return metadata
