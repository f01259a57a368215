"""Engine speed in wall and CPU seconds, beside a fixed reference workload (issue 14).

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/engine_speed.py [--skip-loo] [--out DIR]

Why CPU seconds and a reference: this 2-core machine is shared and its per-core speed
varies ~1.7x from minute to minute, so wall time alone is not comparable between
runs. Every figure is measured in its own fresh process (what a user or a Dagster
worker pays), CPU = user + system of that process and every process it started
(`resource.getrusage(RUSAGE_CHILDREN)` deltas; spawned ranker-fit workers included),
and the reference workload (a fixed single-threaded numpy matmul loop, in its own
process) is timed right before each figure: divide a figure by its reference's CPU
seconds to compare machines or runs.

Figures (demo KB, `make_zoo_demo_kb()`: 10 models x 32 datasets):
  - `loo_evaluate`: `mnc evaluate --protocol loo` (M&C + 2 ablations + 4 baselines,
    32 folds), also printing M&C's OSR / weighted tau so speed and quality are read
    together;
  - `rank_cold`: `mnc rank` in a fresh process, numba's disk cache already written
    (`rank_cold_empty_cache`: the same with an empty NUMBA_CACHE_DIR, i.e. the first
    run after an install). Python's bytecode as the environment has it: this
    project's sandbox sets PYTHONDONTWRITEBYTECODE=1 and its venv holds no `.pyc`, so
    every import compiles from source (~4 CPU s of a cold `mnc rank`);
    `rank_cold_bytecode` is the same with bytecode cached (a private
    PYTHONPYCACHEPREFIX, filled by one untimed run), as on an ordinary install;
  - `next_cold` / `acquire_cold`: `mnc next --budget 5` (the dataset with 2 known
    scores: the KB's other 8 of that dataset's edges removed) and `mnc acquire --n 10`
    on that KB, each in a fresh process (issue 13: `mnc next` <= 10 s cold);
  - `shortlist_cold` / `calibrate` / `shortlist_stored_cold`: `mnc rank --shortlist`
    (a leave-one-out of the other datasets per call), `mnc calibrate` (that
    leave-one-out once, stored) and `mnc rank --calibration` reading the stored file,
    each in a fresh process;
  - `sequential_evaluate`: `mnc evaluate --protocol sequential --budget 5` on the
    demo KB (issue 13: <= 5 minutes; skipped with --skip-loo, as the LOO);
  - `rank_warm`: in one process, `rank_new_dataset` for one dataset (imports and
    first call paid), then timed for another dataset: a new graph, as a long-running
    Dagster worker or sensor sees.
Results: `benchmarks/results/engine_speed.json` and `.txt`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PYTHON = sys.executable
MNC = str(Path(sys.executable).with_name("mnc"))
SINGLE_THREAD = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}

REFERENCE = """
import numpy as np
rng = np.random.default_rng(0)
a = rng.standard_normal((256, 256))
b = a.copy()
for _ in range(600):
    b = a @ b
    b /= np.abs(b).max()
"""

WARM = """
import json, os, sys, time, resource
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
from mnc_core.engine.predict import rank_new_dataset
from mnc_core.kb.store import read_kb
kb = read_kb(sys.argv[1])
first, second = kb.datasets[0], kb.datasets[1]
t0, c0 = time.perf_counter(), time.process_time()
rank_new_dataset(kb, first)
t1, c1 = time.perf_counter(), time.process_time()
rank_new_dataset(kb, second)
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"first": {"wall_s": t1 - t0, "cpu_s": c1 - c0},
                  "second": {"wall_s": t2 - t1, "cpu_s": c2 - c1}}))
"""


LINES: list[str] = []


def say(line: str) -> None:
    """Print a result line and keep it for the .txt copy."""
    LINES.append(line)
    print(line, flush=True)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[dict, str]:
    """Wall and CPU seconds (the process and its descendants) of one fresh process."""
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    figures = {"wall_s": time.perf_counter() - started, "cpu_s": children_cpu() - cpu}
    return figures, done.stdout


def reference() -> dict:
    """The fixed workload, single-threaded, in its own process."""
    figures, _ = run([PYTHON, "-c", REFERENCE], SINGLE_THREAD)
    return figures


def measure(name: str, action) -> dict:
    ref = reference()
    figures = action()
    figures["reference"] = ref
    figures["cpu_per_reference"] = figures["cpu_s"] / ref["cpu_s"]
    extra = figures.get("quality", "")
    say(f"  {name:<24} wall {figures['wall_s']:6.1f} s   CPU {figures['cpu_s']:6.1f} s   "
          f"(reference: wall {ref['wall_s']:4.1f} s, CPU {ref['cpu_s']:4.1f} s; "
          f"CPU / reference {figures['cpu_per_reference']:5.2f}; load "
          f"{os.getloadavg()[0]:.1f}) {extra}")
    return figures


def loo(folder: Path, tmp: Path) -> dict:
    report = tmp / "loo.json"
    figures, _ = run([MNC, "evaluate", "--kb", str(folder), "--protocol", "loo",
                      "--json", str(report)])
    methods = json.loads(report.read_text())["methods"]
    figures["methods"] = {m: {k: methods[m]["mean"][k] for k in ("osr", "wtau", "o2o")}
                          for m in methods}
    mnc = figures["methods"]["mnc"]
    figures["quality"] = f"mnc OSR {mnc['osr']:.3f} wtau {mnc['wtau']:.3f}"
    return figures


def rank_cold(folder: Path, dataset: str, env: dict[str, str] | None = None) -> dict:
    figures, _ = run([MNC, "rank", "--kb", str(folder), "--dataset", dataset], env)
    return figures


def next_cold(folder: Path, dataset: str) -> dict:
    figures, _ = run([MNC, "next", "--kb", str(folder), "--dataset", dataset, "--budget", "5"])
    return figures


def shortlist_cold(folder: Path, dataset: str, stored: Path | None = None) -> dict:
    """`mnc rank --shortlist`, or with `stored` `mnc rank --calibration stored`."""
    extra = ["--shortlist"] if stored is None else ["--calibration", str(stored)]
    figures, _ = run([MNC, "rank", "--kb", str(folder), "--dataset", dataset, *extra])
    return figures


def calibrate(folder: Path, stored: Path) -> dict:
    figures, _ = run([MNC, "calibrate", "--kb", str(folder), "--json", str(stored)])
    return figures


def acquire_cold(folder: Path) -> dict:
    figures, _ = run([MNC, "acquire", "--kb", str(folder), "--n", "10"])
    return figures


def sequential(folder: Path, tmp: Path) -> dict:
    report = tmp / "sequential.json"
    figures, _ = run([MNC, "evaluate", "--kb", str(folder), "--protocol", "sequential",
                      "--budget", "5", "--json", str(report)])
    mean = json.loads(report.read_text())["methods"]["mnc"]["mean"]
    figures["quality"] = (f"mnc regret after 3 {mean['regret_after_3']:.3f}, fine-tunings "
                          f"{mean['fine_tunings_to_near_best']:.2f}")
    return figures


def sparse_copy(kb, dataset: str, folder: Path) -> Path:
    """The KB with only the first 2 known scores of `dataset` (a decision under way)."""
    from mnc_core.kb.store import write_kb

    edges = kb.edges
    drop = edges[edges["dataset"] == dataset].index[2:]
    return write_kb(type(kb)(**{**kb.__dict__, "edges": edges.drop(index=drop)}), folder)


def with_bytecode(prefix: Path) -> dict[str, str]:
    """Environment caching bytecode under `prefix` (leaves the shared venv untouched)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # children inherit os.environ
    return {"PYTHONPYCACHEPREFIX": str(prefix)}


def rank_warm(folder: Path) -> dict:
    figures, stdout = run([PYTHON, "-c", WARM, str(folder)])
    inner = json.loads(stdout.strip().splitlines()[-1])
    return {**inner["second"], "first_call": inner["first"], "process": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-loo", action="store_true", help="only the rank figures")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # inherited by every measured process
    from mnc_core.kb.demo import make_zoo_demo_kb
    from mnc_core.kb.store import write_kb

    results: dict = {"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}
    say(f"== engine speed, demo KB ({results['date']}, {os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        kb = make_zoo_demo_kb()
        folder = write_kb(kb, tmp / "kb")
        dataset = kb.datasets[0]
        results["bytecode"] = "none" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "as is"
        empty = {"NUMBA_CACHE_DIR": str(tmp / "numba")}
        results["rank_cold_empty_cache"] = measure(
            "rank, cold, empty cache", lambda: rank_cold(folder, dataset, empty))
        results["rank_cold"] = measure("rank, cold", lambda: rank_cold(folder, dataset))
        results["rank_warm"] = measure("rank, warm (new graph)", lambda: rank_warm(folder))
        sparse = sparse_copy(kb, dataset, tmp / "kb-sparse")
        results["next_cold"] = measure("next, cold", lambda: next_cold(sparse, dataset))
        results["acquire_cold"] = measure("acquire, cold", lambda: acquire_cold(sparse))
        stored = tmp / "calibration.json"
        results["shortlist_cold"] = measure(
            "rank --shortlist, cold", lambda: shortlist_cold(folder, dataset))
        results["calibrate"] = measure("calibrate", lambda: calibrate(folder, stored))
        results["shortlist_stored_cold"] = measure(
            "rank --calibration, cold", lambda: shortlist_cold(folder, dataset, stored))
        if not args.skip_loo:
            results["loo_evaluate"] = measure("LOO evaluate (full)", lambda: loo(folder, tmp))
            results["sequential_evaluate"] = measure(
                "sequential evaluate, budget 5", lambda: sequential(folder, tmp))
        cached = with_bytecode(tmp / "pyc")
        rank_cold(folder, dataset, cached)  # fills the bytecode cache
        results["rank_cold_bytecode"] = measure(
            "rank, cold, bytecode", lambda: rank_cold(folder, dataset, cached))
        results["rank_warm_bytecode"] = measure(
            "rank, warm, bytecode", lambda: rank_warm(folder))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engine_speed.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "engine_speed.txt").write_text("\n".join(LINES) + "\n")
    print(f"written: {args.out / 'engine_speed.json'} and .txt")


if __name__ == "__main__":
    main()
