"""`mnc` commands of the kb area: `demo-kb` and `import transfergraph|parc`.

Heavy modules are imported inside the command functions so `mnc --help` starts
fast. Errors a user can fix (bad input files, bad flags) print one line and exit
with status 2, without a traceback.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mnc_core.cli.common import add_command, run_or_exit, seed_option

if TYPE_CHECKING:
    from mnc_core.kb.schema import KnowledgeBase

class PeftMethod(StrEnum):
    """Which TransferGraph fine-tuning runs to keep (one method per KB)."""

    full = "full"
    lora = "lora"


class ScoreBefore(StrEnum):
    """Which cheap transferability score becomes TransferGraph's score before fine-tuning."""

    logme = "logme"
    reg_h_score = "reg-h-score"


class ScoreColumn(StrEnum):
    """Which TransferGraph accuracy column becomes the score."""

    eval_accuracy = "eval_accuracy"
    test_accuracy = "test_accuracy"


def _setup() -> None:
    """Progress lines on stderr, plain (imports take seconds, not minutes)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def _print_summary(
    kb: KnowledgeBase,
    out: Path,
    dropped: dict[str, int] | None = None,
    *,
    auxiliary: bool = False,
) -> None:
    """One short report of what was written.

    The auxiliary line appears when the KB has auxiliary edges or they were asked for
    (`auxiliary`), so a request that found none says so instead of staying silent.
    """
    typer.echo(
        f"wrote {out}: {len(kb.models)} models, {len(kb.datasets)} datasets, "
        f"{len(kb.edges)} model-dataset edges, {len(kb.dataset_distances)} dataset distances "
        f"(metric {kb.metric}, {'higher' if kb.higher_is_better else 'lower'} is better)"
    )
    if auxiliary or not kb.aux_edges.empty:
        recipes = f" (recipe {', '.join(kb.recipes)})" if kb.recipes else ""
        typer.echo(f"  {len(kb.aux_edges)} auxiliary edges{recipes}")
    for reason, count in (dropped or {}).items():
        typer.echo(f"  dropped {count} row(s): {reason}")


def demo_kb(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the knowledge base to.")],
    seed: Annotated[int, seed_option("Random seed of the generator.")] = 0,
    datasets: Annotated[int, typer.Option("--datasets", min=2, help="Number of datasets.")] = 32,
    models: Annotated[int, typer.Option("--models", min=2, help="Number of models.")] = 10,
    zoo_features: Annotated[
        bool,
        typer.Option(
            help="Model features computed from the zoo catalog's configs (needs --models 10); "
            "--no-zoo-features uses the generator's synthetic table."
        ),
    ] = True,
) -> None:
    """Write the demo knowledge base: SYNTHETIC scores (CLIP-FID-like, lower is better).

    The ten models are the paper's zoo; by default their features are the real ones
    computed from the catalog configs (`mnc zoo features`), only the scores are made up.
    """

    def action() -> None:
        from mnc_core.kb.demo import ZOO_MODEL_IDS, make_demo_kb, make_zoo_demo_kb
        from mnc_core.kb.store import write_kb

        if zoo_features and models == len(ZOO_MODEL_IDS):
            kb = make_zoo_demo_kb(seed=seed, n_datasets=datasets)
        else:
            kb = make_demo_kb(seed=seed, n_datasets=datasets, n_models=models)
        write_kb(kb, out)
        _print_summary(kb, out)

    _setup()
    run_or_exit(action)


def import_transfergraph(
    src_dir: Annotated[Path, typer.Argument(help="TransferGraph experiment folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the knowledge base to.")],
    peft: Annotated[PeftMethod, typer.Option(help="Fine-tuning runs to keep.")] = PeftMethod.full,
    score: Annotated[
        ScoreColumn, typer.Option(help="records.csv column used as the score.")
    ] = ScoreColumn.eval_accuracy,
    similarity: Annotated[
        str | None,
        typer.Option(help="Similarity file name in SRC_DIR (default: the only one present)."),
    ] = None,
    score_before: Annotated[
        ScoreBefore | None,
        typer.Option(
            help="Import this transferability score (transferability_score_records.csv) "
            "as the score before fine-tuning (default: none)."
        ),
    ] = None,
    auxiliary: Annotated[
        bool,
        typer.Option(
            "--auxiliary/--no-auxiliary",
            help="Also keep the other fine-tuning method's runs (lora for --peft full, full "
            "for --peft lora) of the same models and datasets as auxiliary edges: extra "
            "training tasks for the engine, never predicted. --no-auxiliary drops them.",
        ),
    ] = True,
) -> None:
    """Import TransferGraph fine-tuning records (accuracy, higher is better)."""

    def action() -> None:
        from mnc_core.kb.importers.transfergraph import import_transfergraph as run_import
        from mnc_core.kb.store import write_kb

        result = run_import(
            src_dir,
            peft=peft.value,
            score_column=score.value,
            similarity_file=similarity,
            score_before=score_before.value if score_before else None,
            auxiliary=auxiliary,
        )
        write_kb(result.kb, out)
        _print_summary(result.kb, out, result.dropped, auxiliary=auxiliary)

    _setup()
    run_or_exit(action)


def import_parc(
    csv: Annotated[Path, typer.Argument(help="PARC oracle table (e.g. oracles/all.csv).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the knowledge base to.")],
) -> None:
    """Import PARC fine-tuning oracles (accuracy, higher is better)."""

    def action() -> None:
        from mnc_core.kb.importers.parc import import_parc as run_import
        from mnc_core.kb.store import write_kb

        result = run_import(csv)
        write_kb(result.kb, out)
        _print_summary(result.kb, out, result.dropped)

    _setup()
    run_or_exit(action)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the `mnc` app."""
    add_command(app, "demo-kb", demo_kb)
    importers = typer.Typer(
        name="import",
        help="Import past fine-tuning results into a knowledge base folder.",
        no_args_is_help=True,
    )
    add_command(importers, "transfergraph", import_transfergraph)
    add_command(importers, "parc", import_parc)
    app.add_typer(importers, name="import")
