"""Printed tables of the decision metrics (`decisions.py`) and of `mnc next` / `mnc acquire`.

The JSON layout is `report.py`'s (the decision entries sit in the same `mean` and
`per_dataset` rows); these tables are printed below the methods x metrics table.
"""

from __future__ import annotations

import math

from mnc_core.engine.report import METHOD_ORDER

LOO_COLUMNS = ("regret@1", "regret@3", "hit@1", "hit@3", "fine_tunings_to_near_best",
               "fine_tunings_to_near_best_median", "fine_tunings_to_near_best_max",
               "gpu_hours_to_near_best")
SHORT = {
    "fine_tunings_to_near_best": "ft-near",
    "fine_tunings_to_near_best_median": "ft-med",
    "fine_tunings_to_near_best_max": "ft-max",
    "gpu_hours_to_near_best": "gpuh-near",
}


def _cell(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def decisions_table(methods: dict[str, dict], columns: tuple[str, ...] = LOO_COLUMNS) -> str:
    """One row per method, one column per decision metric (mean over datasets)."""
    names = [m for m in METHOD_ORDER if m in methods] + [
        m for m in methods if m not in METHOD_ORDER
    ]
    columns = tuple(c for c in columns if any(c in methods[n]["mean"] for n in names))
    width = max(len("method"), *(len(n) for n in names))
    heads = [SHORT.get(c, c.replace("regret_after_", "after-")) for c in columns]
    lines = ["  ".join([f"{'method':<{width}}", *(f"{h:>10}" for h in heads)])]
    for name in names:
        mean = methods[name]["mean"]
        lines.append("  ".join([f"{name:<{width}}",
                                *(f"{_cell(mean.get(c)):>10}" for c in columns)]))
    return "decisions (regret in the KB's score unit; ft = fine-tunings to near-best)\n" + (
        "\n".join(lines)
    )


def sequential_columns(budget: int) -> tuple[str, ...]:
    """The sequential protocol's columns: regret after each pick, then the counts."""
    return (*(f"regret_after_{b}" for b in range(1, budget + 1)),
            "fine_tunings_to_near_best", "fine_tunings_to_near_best_median",
            "fine_tunings_to_near_best_max", "gpu_hours_to_near_best")


def shortlist_text(result: dict) -> str:
    """`mnc rank --shortlist`'s lines: the shortlist, its probability, cost and reliability."""
    rel = result["reliability"]
    lines = [
        f"shortlist ({result['ordered_by']}): {len(result['models'])} model(s) reach "
        f"near-best probability {result['probability']:.2f} (target {result['target']:.2f}"
        + ("" if result["reached"] else ", not reached") + ")",
        "  " + ", ".join(f"{m} ({result['near_best_probability'][m]:.2f})"
                         for m in result["models"]),
    ]
    if "gpu_hours" in result:
        lines.append(f"  GPU hours: {result['gpu_hours']:.3g} for the shortlist, "
                     f"{result['gpu_hours_all']:.3g} for every model, "
                     f"saved {result['gpu_hours_saved']:.3g}")
    lines.append(f"  calibration (leave-one-out, {rel['datasets']} datasets, cross-fitted): "
                 f"Brier {rel['brier']:.4f}, ECE {rel['ece']:.4f}")
    return "\n".join(lines)
