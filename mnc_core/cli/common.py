"""What every `mnc` command area shares, defined once: the usage-error exit, the
one-line error rule and the `--seed` option."""

from __future__ import annotations

from collections.abc import Callable

import typer

USAGE_ERROR = 2

# Seeds reach numpy's legacy RandomState (walk sampling) and CatBoost, which take
# 32-bit seeds; checking the range here gives a usage error naming --seed instead
# of a traceback deep in a fit.
MAX_SEED = 2**32 - 1


def seed_option(help: str) -> typer.models.OptionInfo:
    """`--seed N`, 0 <= N <= MAX_SEED."""
    return typer.Option(min=0, max=MAX_SEED, help=f"{help} (0..2**32-1)")


def run_or_exit(action: Callable[[], None]) -> None:
    """Run `action`; an error the user can fix (bad input, unknown id, unwritable path)
    becomes one line on stderr and exit status 2, never a traceback."""
    try:
        action()
    except KeyError as exc:  # str(KeyError) adds quotes: print the message itself
        typer.echo(f"error: {exc.args[0] if exc.args else exc}", err=True)
        raise typer.Exit(code=USAGE_ERROR) from None
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=USAGE_ERROR) from None
