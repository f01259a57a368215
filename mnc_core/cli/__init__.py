"""The `mnc` command line: one module per area registers its commands here."""

from __future__ import annotations

import typer

from mnc_core.cli import decision_commands, engine_commands, kb_commands, zoo_commands

app = typer.Typer(
    name="mnc",
    help="Match & Choose: rank text-to-image models for a dataset before fine-tuning them.",
    no_args_is_help=True,
    add_completion=False,
)

kb_commands.register(app)
engine_commands.register(app)
decision_commands.register(app)
zoo_commands.register(app)
