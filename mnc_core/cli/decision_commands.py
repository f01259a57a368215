"""`mnc` commands that turn the ranking into decisions: `calibrate`, `next`, `acquire`.

Heavy modules are imported inside the commands (the CLI starts fast); errors a user
can fix print one line and exit with status 2 (`run_or_exit`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from mnc_core.cli.common import add_command, run_or_exit, seed_option
from mnc_core.cli.engine_commands import (
    _settings,
    _setup,
    read_kb_for_dataset,
    read_stored_calibration,
)
from mnc_core.engine import decision_defaults


def next_model(
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base folder.")],
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset being fine-tuned on.")],
    budget: Annotated[
        int | None, typer.Option(min=1, help="Fine-tunings the team can afford in all.")
    ] = None,
    stop_probability: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Stop once the tried models reach this "
                            "near-best probability.")
    ] = decision_defaults.STOP_PROBABILITY,
    show: Annotated[int, typer.Option(min=1, help="Candidates printed.")] = 5,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write JSON.")] = None,
    ranker: Annotated[str, typer.Option(help="Ranker name.")] = "catboost-class",
    seed: Annotated[int, seed_option("Seed of walks and ranker.")] = 0,
    calibration: Annotated[
        Path | None, typer.Option(help="A stored near-best calibration (mnc calibrate, or "
                                  "the platform's near_best_calibration.json): M&C's share "
                                  "of the prior is fitted on its leave-one-out, else 0.5.")
    ] = None,
) -> None:
    """The next model to fine-tune on DATASET given the scores already known for it in
    the KB (add each finished fine-tuning to the KB's edges.csv and ask again)."""

    def action() -> None:
        from mnc_core.engine import report
        from mnc_core.engine.sequential import next_pick

        knowledge = read_kb_for_dataset(kb, dataset, json_path)
        share, share_from = fitted_prior_share(calibration, knowledge, dataset, ranker, seed)
        result = next_pick(knowledge, dataset, _settings(ranker, None, None), seed, budget,
                           stop_probability, prior_share=share)
        tried = result["tried"]
        typer.echo(f"{dataset}: {len(tried)} model(s) already fine-tuned"
                   + (f", best {result['best_tried']}" if tried else ""))
        if result["next"] is not None:
            first = result["candidates"][0]
            typer.echo(f"next: {first['model']} (near-best probability "
                       f"{first['near_best_probability']:.2f})")
        typer.echo(f"near-best probability of the tried models: "
                   f"{result['tried_near_best_probability']:.2f}")
        typer.echo("stop: " + ("yes (" + "; ".join(result["stop_reasons"]) + ")"
                               if result["stop"] else "no"))
        typer.echo(f"M&C's share of the prior: {share:.2f} ({share_from}); the rest: "
                   f"{result['prior_baseline']}")
        _echo_candidates(result["candidates"][:show], knowledge.metric)
        if json_path is not None:
            report.write_json({"kb": str(kb), "metric": knowledge.metric,
                               "higher_is_better": knowledge.higher_is_better,
                               "ranker": ranker, "seed": seed, "budget": budget,
                               **result}, json_path)

    _setup()
    run_or_exit(action)


def fitted_prior_share(path: Path | None, knowledge, dataset: str, ranker: str,
                       seed: int) -> tuple[float, str]:
    """M&C's share of the sequential prior from a stored calibration (its points of
    `dataset` left out) and where it came from; the default without one."""
    from mnc_core.engine.score_posterior import PRIOR_SHARE
    from mnc_core.engine.shortlist import calibrated_prior_share, calibration_for

    if path is None:
        return PRIOR_SHARE, "the default; --calibration FILE fits it"
    stored = read_stored_calibration(path, knowledge, ranker, seed)
    return calibrated_prior_share(calibration_for(stored, dataset)), f"fitted on {path}"


def _echo_candidates(candidates: list[dict], metric: str) -> None:
    """The untried models as a table (nothing when every model is tried)."""
    if not candidates:
        return
    width = max([30, *(len(c["model"]) for c in candidates)])
    typer.echo(f"{'model':<{width}} {'P(near-best)':>12} {'expected ' + metric:>24}")
    for row in candidates:
        expected = ("-" if row["expected_score"] is None else
                    _with_sd(row["expected_score"], row["expected_score_sd"]))
        typer.echo(f"{row['model']:<{width}} {row['near_best_probability']:>12.2f} "
                   f"{expected:>24}")


def _with_sd(value: float, sd: float) -> str:
    """`value +- sd` with the sd to two significant digits and the value to as many
    decimals (a column of such figures lines up and reads at one precision)."""
    decimals = 2 if not sd > 0 else max(0, 1 - math.floor(math.log10(sd)))
    return f"{value:.{decimals}f} +- {sd:.{decimals}f}"


def acquire(
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base folder.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Pairs to propose.")] = 10,
    per_dataset: Annotated[
        int | None, typer.Option(min=1, help="At most this many pairs per dataset "
                                 "(default: --n spread over the datasets).")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write JSON.")] = None,
) -> None:
    """The (model, dataset) pairs whose fine-tuning would teach the knowledge base the
    most, with their expected gain (fine-tune them, add the scores to edges.csv)."""

    def action() -> None:
        from mnc_core.engine import report
        from mnc_core.engine.acquisition import propose_for_kb
        from mnc_core.kb.store import read_kb

        if json_path is not None:
            report.check_json_path(json_path, kb)
        knowledge = read_kb(kb)
        pairs = propose_for_kb(knowledge, n, per_dataset)
        if pairs.empty:
            typer.echo(f"{kb}: every (model, dataset) pair has a score: nothing to acquire")
        else:
            width = max(30, *(len(m) for m in pairs["model"]))
            typer.echo(f"{'model':<{width}} {'dataset':<24} {'expected gain':>13} {'known':>5}")
            for row in pairs.itertuples(index=False):
                typer.echo(f"{row.model:<{width}} {row.dataset:<24} "
                           f"{row.expected_gain:>13.4g} {row.known:>5d}")
        if json_path is not None:
            report.write_json({"kb": str(kb), "metric": knowledge.metric, "n": n,
                               "pairs": pairs.to_dict(orient="records")}, json_path)

    _setup()
    run_or_exit(action)


def calibrate(
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base folder.")],
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the calibration.")],
    ranker: Annotated[str, typer.Option(help="Ranker name.")] = "catboost-class",
    seed: Annotated[int, seed_option("Seed of walks and ranker.")] = 0,
) -> None:
    """Calibrate the near-best probabilities on the KB's leave-one-out and store them
    (the file the platform keeps; mnc rank and mnc next read it with --calibration)."""

    def action() -> None:
        from mnc_core.engine import report
        from mnc_core.engine.shortlist import calibration_document
        from mnc_core.kb.store import read_kb

        report.check_json_path(json_path, kb)
        knowledge = read_kb(kb)
        document = calibration_document(knowledge, _settings(ranker, None, None), seed)
        report.write_json(document, json_path)
        typer.echo(f"wrote {json_path}: {document['datasets']} datasets, {document['pairs']} "
                   f"(model, dataset) pairs left out in turn; Brier {document['brier']:.3f}, "
                   f"ECE {document['ece']:.3f}; M&C's share of the sequential prior "
                   f"{document['prior_share']:.2f}")

    _setup()
    run_or_exit(action)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the `mnc` app."""
    add_command(app, "calibrate", calibrate)
    add_command(app, "next", next_model)
    add_command(app, "acquire", acquire)
