"""`mnc` commands of the engine area: `evaluate` and `rank`.

Heavy modules (pecanpy, numba, catboost) are imported inside the commands so the
CLI starts fast. Errors a user can fix (unknown dataset, bad KB folder, bad flags)
print one line and exit with status 2.
"""

from __future__ import annotations

import logging
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mnc_core.cli.common import add_command, run_or_exit, seed_option
from mnc_core.engine import decision_defaults

DEFAULT_SPARSITY_SEEDS = 3


class Protocol(StrEnum):
    """Evaluation protocols."""

    loo = "loo"
    sparsity = "sparsity"
    sequential = "sequential"


def _setup() -> None:
    """One numba thread (the walks use one anyway; ranker fits get the cores, as in the
    benchmarks) and progress lines on stderr, with times (evaluations run minutes)."""
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%X")
    logging.getLogger("mnc_core").setLevel(logging.INFO)


def _settings(
    ranker: str, walks: int | None, iterations: int | None, use_score_before: bool = False
):
    from mnc_core.engine.predict import engine_settings

    return engine_settings(ranker, walks, iterations, use_score_before)


def evaluate(
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base folder.")],
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the JSON report.")],
    protocol: Annotated[
        Protocol, typer.Option(help="loo, sparsity or sequential.")
    ] = Protocol.loo,
    ranker: Annotated[
        str, typer.Option(help="catboost-class | catboost-yetirank | catboost-regression.")
    ] = "catboost-class",
    seed: Annotated[int, seed_option("Seed of walks, rankers and sparsity draws.")] = 0,
    targets: Annotated[
        str | None, typer.Option(help="Comma-separated target datasets (default: all).")
    ] = None,
    sparsity_seeds: Annotated[
        int | None, typer.Option(min=1, help="Draws per sparsity level (default 3).")
    ] = None,
    levels: Annotated[
        str | None, typer.Option(help="Comma-separated sparsity levels (default 0.1..0.9).")
    ] = None,
    walks: Annotated[int | None, typer.Option(min=1, help="Node2Vec+ walks per node.")] = None,
    iterations: Annotated[int | None, typer.Option(min=1, help="CatBoost iterations.")] = None,
    use_score_before: Annotated[
        bool,
        typer.Option(
            help="Also feed the target's scores before fine-tuning (KB score_before) to M&C."
        ),
    ] = False,
    budget: Annotated[
        int | None,
        typer.Option(min=1, help="Sequential protocol: picks reported (default 5)."),
    ] = None,
) -> None:
    """Evaluate M&C and the baselines (leave-one-dataset-out, sparsity sweep, or sequential
    selection where each pick's true score is revealed before the next)."""

    def action() -> None:
        from mnc_core.engine import decision_report, protocols, report
        from mnc_core.kb.store import read_kb

        started = time.perf_counter()
        _refuse_sparsity_flags(protocol, levels=levels, sparsity_seeds=sparsity_seeds)
        draws = DEFAULT_SPARSITY_SEEDS if sparsity_seeds is None else sparsity_seeds
        if budget is not None and protocol is not Protocol.sequential:
            raise ValueError("--budget only applies to --protocol sequential")
        picks = protocols.SEQUENTIAL_BUDGET if budget is None else budget
        report.check_json_path(json_path, kb)
        knowledge = read_kb(kb)
        settings = _settings(ranker, walks, iterations, use_score_before)
        chosen = _targets(targets)
        if protocol is Protocol.loo:
            result = protocols.leave_one_out(knowledge, settings, seed, chosen)
        elif protocol is Protocol.sequential:
            result = protocols.sequential(knowledge, settings, seed, chosen, picks)
        else:
            result = protocols.sparsity_sweep(
                knowledge, settings, seed, _levels(levels), draws, chosen
            )
        document = {
            "wall_s": round(time.perf_counter() - started, 3),
            "protocol": protocol.value,
            "kb": str(kb),
            "ranker": ranker,
            "seed": seed,
            "use_score_before": use_score_before,
            "targets": chosen,
            "walks": settings.node2vec.num_walks,
            "iterations": settings.catboost.iterations,
            **result,
        }
        if protocol is Protocol.sparsity:
            document["sparsity_seeds"] = draws
        if protocol is Protocol.sequential:
            typer.echo(decision_report.decisions_table(
                result["methods"], decision_report.sequential_columns(picks)))
            shares = list(result["prior_share"].values())
            if shares:
                typer.echo(f"M&C's share of the prior, fitted on the other folds: "
                           f"{min(shares):.2f} - {max(shares):.2f}")
        else:
            typer.echo(report.methods_table(result["methods"]))
            typer.echo(decision_report.decisions_table(result["methods"]))
        if "levels" in result:
            typer.echo(report.levels_table(result["levels"]))
        if result.get("skipped"):
            typer.echo(
                "skipped (too few known scores, or nothing to learn from): "
                + ", ".join(result["skipped"])
            )
        report.write_json(document, json_path)
        typer.echo(f"wrote {json_path} ({document['wall_s']:.1f} s)")

    _setup()
    run_or_exit(action)


def _refuse_sparsity_flags(protocol: Protocol, **given: object) -> None:
    """A sparsity-only flag with `--protocol loo` is an error: silently ignoring it would
    let a user believe the run used their levels or draws."""
    if protocol is Protocol.sparsity:
        return
    flags = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None]
    if flags:
        raise ValueError(
            f"{' and '.join(flags)} only apply to --protocol sparsity (this run is "
            f"--protocol {protocol.value}); leave them out or add --protocol sparsity"
        )


def read_kb_for_dataset(kb: Path, dataset: str, json_path: Path | None):
    """The KB at `kb`, after checking the report path and that `dataset` is in it (the
    commands about one dataset: `rank`, `next`)."""
    from mnc_core.engine import report
    from mnc_core.kb.store import read_kb

    if json_path is not None:
        report.check_json_path(json_path, kb)
    knowledge = read_kb(kb)
    if dataset not in knowledge.datasets:
        raise KeyError(f"{kb}: dataset {dataset!r} is not in the knowledge base")
    return knowledge


def _targets(text: str | None) -> list[str] | None:
    """`--targets a,b` as a list; None (every dataset) when the option is not given."""
    if text is None:
        return None
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    if not chosen:
        raise ValueError(f"--targets: no dataset id in {text!r}; leave it out to use every dataset")
    return chosen


def _levels(text: str | None) -> tuple[float, ...]:
    from mnc_core.engine.protocols import SPARSITY_LEVELS

    if not text:
        return SPARSITY_LEVELS
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--levels: expected comma-separated numbers, got {text!r}") from None
    return values


def rank(
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base folder.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id to rank models for.")],
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the ranking as JSON.")
    ] = None,
    ranker: Annotated[str, typer.Option(help="Ranker name.")] = "catboost-class",
    seed: Annotated[int, seed_option("Seed of walks and ranker.")] = 0,
    shortlist: Annotated[
        bool, typer.Option(help="Also the calibrated shortlist (runs a leave-one-out of the "
                           "KB's other datasets to calibrate: minutes on big KBs).")
    ] = False,
    probability: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Shortlist: near-best probability to reach.")
    ] = decision_defaults.SHORTLIST_TARGET,
    by_cost: Annotated[
        bool, typer.Option(help="Shortlist ordered by expected gain per GPU hour.")
    ] = False,
    calibration: Annotated[
        Path | None, typer.Option(help="The shortlist from a stored near-best calibration "
                                  "(mnc calibrate, or the platform's "
                                  "near_best_calibration.json) instead of a leave-one-out "
                                  "per call; implies --shortlist.")
    ] = None,
) -> None:
    """Rank every model for one dataset, treating it as new (its known scores shown beside)."""

    def action() -> None:
        from mnc_core.engine import report
        from mnc_core.engine.predict import rank_new_dataset

        knowledge = read_kb_for_dataset(kb, dataset, json_path)
        settings = _settings(ranker, None, None)
        stored = (None if calibration is None
                  else read_stored_calibration(calibration, knowledge, ranker, seed))
        table = rank_new_dataset(knowledge, dataset, settings, seed)
        typer.echo(f"{dataset}: predicted ranking ({knowledge.metric}, "
                   f"{'higher' if knowledge.higher_is_better else 'lower'} is better when known)")
        typer.echo(report.ranking_table(table))
        document = {"kb": str(kb), "dataset": dataset, "metric": knowledge.metric,
                    "higher_is_better": knowledge.higher_is_better, "ranker": ranker,
                    "seed": seed, "ranking": report.ranking_rows(table)}
        if shortlist or stored is not None:  # imported here: a plain rank stays lean
            from mnc_core.engine.decision_report import shortlist_text
            from mnc_core.engine.shortlist import shortlist_for, shortlist_from_calibration

            document["shortlist"] = (
                shortlist_for(knowledge, dataset, table, settings, seed, probability, by_cost)
                if stored is None else shortlist_from_calibration(
                    knowledge, dataset, table, stored, probability, by_cost))
            typer.echo(shortlist_text(document["shortlist"]))
        if stored is not None:
            document["calibration"] = str(calibration)
        if json_path is not None:
            report.write_json(document, json_path)

    _setup()
    run_or_exit(action)


def read_stored_calibration(path: Path, knowledge, ranker: str, seed: int) -> dict:
    """A stored near-best calibration (`--calibration`), with a warning on stderr for
    each sign that it was fitted on another KB or ranking (it is still used)."""
    from mnc_core.engine.shortlist import read_calibration_file, stale_calibration

    stored = read_calibration_file(path)
    for reason in stale_calibration(stored, knowledge, ranker, seed):
        typer.echo(f"warning: {path} may be stale: {reason} (re-run mnc calibrate)", err=True)
    return stored


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the `mnc` app."""
    add_command(app, "evaluate", evaluate)
    add_command(app, "rank", rank)
