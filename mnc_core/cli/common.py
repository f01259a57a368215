"""Options shared by several `mnc` commands, defined once."""

from __future__ import annotations

import typer

# Seeds reach numpy's legacy RandomState (walk sampling) and CatBoost, which take
# 32-bit seeds; checking the range here gives a usage error naming --seed instead
# of a traceback deep in a fit.
MAX_SEED = 2**32 - 1


def seed_option(help: str) -> typer.models.OptionInfo:
    """`--seed N`, 0 <= N <= MAX_SEED."""
    return typer.Option(min=0, max=MAX_SEED, help=f"{help} (0..2**32-1)")
