"""The local Dagster instance: a `dagster.yaml` under DAGSTER_HOME, written once.

`dagster dev` keeps its runs, event logs and pool slots in DAGSTER_HOME; without a
`dagster.yaml` there, the GPU steps would run with no pool limit (several trainings
on one GPU run it out of memory) and a cancelled run would keep its pool slots, so
the next GPU step would wait forever. `prepare_dagster_home()` writes a file that
fixes both, the first time only: after that it is the user's file (they may raise a
limit or point storage elsewhere), and it is never rewritten.

DAGSTER_HOME defaults to `<data root>/dagster_home` (`DataLayout.dagster_home()`),
next to the artifacts the runs produce. `python -m mnc_resources.instance` prepares it
and prints its path, for `export DAGSTER_HOME=$(python -m mnc_resources.instance)`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mnc_core.paths import DataLayout
from mnc_resources import data_root

CONFIG_FILENAME = "dagster.yaml"
# Seconds after a run ends (finished, failed or cancelled) before the daemon frees the
# pool slots its steps still hold: long enough for a finishing step to release its own.
FREE_SLOTS_AFTER_RUN_END_SECONDS = 30

TEMPLATE = """\
# Written once by mnc_resources/instance.py (prepare_dagster_home); yours to edit,
# it is never overwritten.

concurrency:
  pools:
    # Limit of every pool without a limit of its own. The platform's only pool is
    # `gpu` (training and sampling steps), so this is the number of GPUs found when
    # this file was written ({gpus_found} found; at least 1, so CPU-only machines
    # still run them one at a time). One pool alone can be changed with
    # `dagster instance concurrency set gpu N` (kept in the instance database).
    default_limit: {limit}

# The daemon frees the pool slots of a run that ended (a cancelled run included)
# instead of keeping them held until someone frees them by hand.
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: {free_after}

telemetry:
  enabled: false
"""


def count_gpus() -> int:
    """NVIDIA GPUs on this machine, from `nvidia-smi -L` (0 when it is absent or fails).

    `nvidia-smi` answers in well under a second, where importing torch to ask CUDA
    costs seconds on every `make ui`. `CUDA_VISIBLE_DEVICES`, when set, bounds the
    count: steps only see the devices it lists.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        listing = subprocess.run(
            [smi, "-L"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    found = sum(1 for line in listing.splitlines() if line.startswith("GPU "))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        listed = [d for d in visible.split(",") if d.strip()]
        # CUDA ignores the entries from a negative index on ("-1" hides every GPU).
        n_visible = 0
        for device in listed:
            if device.strip().lstrip("-").isdigit() and int(device) < 0:
                break
            n_visible += 1
        found = min(found, n_visible)
    return found


def dagster_yaml(gpus: int) -> str:
    """The text of the instance's `dagster.yaml` for a machine with `gpus` GPUs."""
    if gpus < 0:
        raise ValueError(f"number of GPUs must be >= 0, got {gpus}")
    return TEMPLATE.format(
        gpus_found=gpus, limit=max(gpus, 1), free_after=FREE_SLOTS_AFTER_RUN_END_SECONDS
    )


def prepare_dagster_home(home: Path | None = None, gpus: int | None = None) -> Path:
    """DAGSTER_HOME (default `<data root>/dagster_home`), created with a `dagster.yaml`.

    The file is written only when absent: an existing one (edited by its user, say) is
    left exactly as it is. `gpus` overrides the count from `count_gpus()`.
    """
    home = Path(home) if home is not None else DataLayout(data_root()).dagster_home()
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / CONFIG_FILENAME
    if config.exists():
        return home
    text = dagster_yaml(count_gpus() if gpus is None else gpus)
    try:
        # "x": a file that appeared meanwhile (another `make ui`) is not replaced.
        f = open(config, "x", encoding="utf-8")  # noqa: SIM115 (closed below)
    except FileExistsError:
        return home
    try:
        with f:
            f.write(text)
    except BaseException:
        # A half-written file would pass for the user's own from then on.
        config.unlink(missing_ok=True)
        raise
    return home


def main() -> int:
    """Prepare DAGSTER_HOME and print its path, and nothing else, on stdout."""
    print(prepare_dagster_home())
    return 0


if __name__ == "__main__":
    sys.exit(main())
