"""Run one `mnc` job in a real process, optionally paused at a chosen function, for the
interrupt tests (tests/test_interrupts.py). Not a test module.

    python interrupt_driver.py READY PAUSE MODE ARGS...

PAUSE `module:function` (or `-`): that function is replaced by one that touches READY and
sleeps, so a signal lands exactly there (e.g. with a staging folder on disk). MODE:
`cli` runs `mnc ARGS`; `lora PIPELINE DATASET OUT` trains a tiny LoRA and `embed DATASET
CACHE` embeds with the tiny CLIP, both through `run_or_exit` (as a command would);
`lora-lib` / `embed-lib` do the same as bare library calls (no signal handler: what a
host such as Dagster sees).
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def _pause(target: str, ready: Path) -> None:
    module_name, name = target.split(":")
    module = importlib.import_module(module_name)

    def paused(*args, **kwargs):
        ready.touch()
        time.sleep(120)
        raise AssertionError("the pause was not interrupted")

    setattr(module, name, paused)


def _lora(pipeline: str, dataset: str, out: str) -> None:
    from mnc_core.t2i.datasets import load_imagefolder
    from mnc_core.t2i.lora_training import LoraTrainConfig, train_lora

    config = LoraTrainConfig(max_steps=4, batch_size=2, learning_rate=1e-3, rank=4,
                             resolution=32, checkpoint_every=2, max_sequence_length=16, seed=3)
    train_lora(Path(pipeline), load_imagefolder(Path(dataset)), Path(out), config,
               cache_dir=Path(out) / "cache")


def _embed(dataset: str, cache: str) -> None:
    from mnc_core.t2i.clip_embed import embed_dataset, tiny_clip

    embed_dataset(tiny_clip(seed=0), Path(dataset), Path(cache), min_pairs=1)


def main() -> None:
    ready, pause, mode, *args = sys.argv[1:]
    if pause != "-":
        _pause(pause, Path(ready))
    if mode == "cli":
        from mnc_core.cli import app

        app(args, prog_name="mnc")
        return
    job = {"lora": _lora, "embed": _embed, "lora-lib": _lora, "embed-lib": _embed}[mode]
    if mode.endswith("-lib"):
        job(*args)
    else:  # as an `mnc` command runs it; typer.Exit is what click turns into the status
        import typer

        from mnc_core.cli.common import run_or_exit

        try:
            run_or_exit(lambda: job(*args))
        except typer.Exit as exc:
            sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
