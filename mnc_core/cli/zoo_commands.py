"""`mnc` commands of the zoo area: `mnc zoo features`.

torch and diffusers are imported inside the command functions so that `mnc
--help` and the other areas' commands start fast.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mnc_core.cli.common import add_command, run_or_exit

if TYPE_CHECKING:
    from mnc_core.t2i.model_features import ModelFeatures

zoo_app = typer.Typer(help="The model zoo: pipeline configs and model features.")


def default_cache_dir() -> Path:
    """Where counted parameter/FLOP results are memoised (keyed by config content)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnc" / "zoo-costs"


def features_json(features: ModelFeatures) -> dict:
    """The JSON document of `mnc zoo features --json`: model id -> params, tflops, features."""
    return {
        model_id: {
            "params": int(features.params[model_id]),
            "tflops": float(features.tflops[model_id]),
            "features": {name: float(v) for name, v in features.table.loc[model_id].items()},
        }
        for model_id in features.table.index
    }


def features_command(
    model_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--model-dir",
            help="A diffusers pipeline directory (repeatable). Default: the shipped catalog.",
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the features to this JSON file.")
    ] = None,
    show_features: Annotated[
        bool, typer.Option("--show-features", help="Print every feature column too.")
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Cache of counted params/FLOPs. Default: ~/.cache/mnc/zoo-costs."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recount, do not cache.")] = False,
) -> None:
    """Model features (paper section 4.2) of the catalog or of the given pipeline dirs."""

    def action() -> None:
        from mnc_core.engine import report
        from mnc_core.t2i.model_features import compute_model_features

        if json_path is not None:
            report.check_json_path(json_path)
        cache = None if no_cache else (cache_dir or default_cache_dir())
        features = compute_model_features(model_dir or None, cache_dir=cache)
        _print_features(features, show_features)
        if json_path is not None:
            report.write_json(features_json(features), json_path)
            typer.echo(f"wrote {json_path}")

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_or_exit(action)


def _print_features(features: ModelFeatures, show_features: bool) -> None:
    """The per-model summary (size, cost, sampling settings), every column on request."""
    import pandas as pd

    sampling = {m: cost.sampling for m, cost in features.costs.items()}
    summary = pd.DataFrame(
        {
            "params_G": features.params / 1e9,
            "tflops_per_image": features.tflops,
            "steps": {m: s.steps for m, s in sampling.items()},
            "cfg_passes": {m: s.guidance_passes for m, s in sampling.items()},
            "resolution": {m: s.height for m, s in sampling.items()},
        },
        index=features.table.index,
    )
    typer.echo(summary.round(3).to_string())
    typer.echo(
        f"{features.table.shape[1]} feature columns from "
        f"{features.raw.shape[1]} flattened hyperparameters"
    )
    if show_features:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            typer.echo(features.table.T.round(3).to_string())


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the `mnc` app."""
    add_command(zoo_app, "features", features_command)
    app.add_typer(zoo_app, name="zoo")
