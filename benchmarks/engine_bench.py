"""Reproduce every engine figure: speed on the demo KB and selection quality.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/engine_bench.py [--sparsity] [--no-real]

The demo KB is the one `mnc demo-kb` writes (real zoo model features, synthetic scores).
Speed (warm start excluded: imports and numba's first compile are paid by a warm-up
before the clocks start; the walk kernel is then loaded, never recompiled). Wall
only; `benchmarks/engine_speed.py` gives CPU seconds and a reference workload:
  - leave-one-out on the demo KB, M&C only (32 folds: 32 Node2Vec+ embeddings, 32
    ranker fits), then the full `evaluate` (ablations + baselines);
  - ranking one new dataset in process, and a cold `mnc rank` subprocess;
  - with --sparsity: the sweep, 9 levels x 3 draws x 32 folds.
Quality: leave-one-out tables on the demo KB, TransferGraph text (full fine-tuning,
eval_accuracy, the 8 targets of published_w-kendall_correlation.csv) and PARC,
read from ../shared/benchmarks (skipped with a note when absent).
The machine load (1-minute load average) is printed beside the speed figures.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from mnc_core.engine import protocols, report  # noqa: E402
from mnc_core.engine.embedding import embed_graphs  # noqa: E402
from mnc_core.engine.graph import build_matching_graph  # noqa: E402
from mnc_core.engine.inputs import BOTH  # noqa: E402
from mnc_core.engine.predict import EngineSettings, rank_new_dataset  # noqa: E402
from mnc_core.ids import slugify  # noqa: E402
from mnc_core.kb.demo import make_zoo_demo_kb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "benchmarks"
TG_DIR = SHARED / "transfergraph-text"
PARC_CSV = SHARED / "parc" / "all.csv"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def warm_up(kb) -> None:
    """Pay imports and numba's one-time load (or compile) of the walk kernel."""
    graph = build_matching_graph(
        kb.models, kb.datasets[:3], kb.edges.iloc[:5], kb.dataset_distances.iloc[:2], False
    )
    embed_graphs({"warm": graph})
    protocols.leave_one_out(kb, EngineSettings(), 0, kb.datasets[:1], {"mnc": BOTH})


def timed(label: str, action):
    started = time.perf_counter()
    result = action()
    wall = time.perf_counter() - started
    print(f"  {label:<58} {wall:7.1f} s   ({load()})", flush=True)
    return result, wall


def speed(kb, run_sparsity: bool) -> dict:
    print(f"\n== speed (demo KB: {len(kb.models)} models x {len(kb.datasets)} datasets)")
    warm_up(kb)
    timed("LOO, M&C only (32 embeddings + 32 ranker fits)",
          lambda: protocols.leave_one_out(kb, EngineSettings(), 0, None, {"mnc": BOTH}))
    full, _ = timed("LOO, full evaluate (3 M&C variants + 4 baselines)",
                    lambda: protocols.leave_one_out(kb, EngineSettings(), 0))
    timed("rank one new dataset (in process, warm)",
          lambda: rank_new_dataset(kb, kb.datasets[0]))
    with tempfile.TemporaryDirectory() as tmp:
        from mnc_core.kb.store import write_kb

        folder = write_kb(kb, Path(tmp) / "kb")
        mnc = str(Path(sys.executable).with_name("mnc"))
        timed("rank one new dataset (cold `mnc rank` subprocess)",
              lambda: subprocess.run([mnc, "rank", "--kb", str(folder), "--dataset",
                                      kb.datasets[0]], check=True, capture_output=True))
    if run_sparsity:
        sweep, _ = timed("sparsity sweep, 9 levels x 3 draws x 32 folds",
                         lambda: protocols.sparsity_sweep(kb, EngineSettings(), 0))
        print(report.levels_table(sweep["levels"], "osr"))
        print(report.levels_table(sweep["levels"], "wtau"))
    return full


def quality_table(name: str, result: dict, targets: list[str]) -> None:
    print(f"\n== quality: {name}, leave-one-out")
    print(report.methods_table(result["methods"]))
    mnc, overall = result["methods"]["mnc"]["per_dataset"], result["methods"]["overall"][
        "per_dataset"
    ]
    print(f"\n{'dataset':<24} {'wtau mnc':>9} {'overall':>8} {'top1 mnc':>9} {'overall':>8} "
          f"{'osr mnc':>8} {'overall':>8}")
    wins = 0
    for d in targets:
        if d not in mnc:
            continue
        m, o = mnc[d], overall[d]
        wins += (m["wtau"] or -2) > (o["wtau"] or -2)
        print(f"{d:<24} {_f(m['wtau']):>9} {_f(o['wtau']):>8} {_f(m['top1']):>9} "
              f"{_f(o['top1']):>8} {_f(m['osr']):>8} {_f(o['osr']):>8}")
    print(f"M&C weighted tau above Overall on {wins} of {len(mnc)} datasets")


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def published_targets() -> list[str]:
    with open(TG_DIR / "published_w-kendall_correlation.csv", newline="") as handle:
        header = next(csv.reader(handle))
    return [slugify(c) for c in header[1:] if c and c != "average"]


def real_benchmarks() -> None:
    if not TG_DIR.is_dir():
        print(f"\n(skipped TransferGraph: {TG_DIR} absent)")
    else:
        from mnc_core.kb.importers.transfergraph import import_transfergraph

        kb = import_transfergraph(TG_DIR, peft="full", score_column="eval_accuracy").kb
        targets = published_targets()
        result, _ = timed("TransferGraph LOO (8 targets)",
                          lambda: protocols.leave_one_out(kb, EngineSettings(), 0, targets))
        quality_table("TransferGraph text (full FT, eval_accuracy; published: "
                      "TransferGraph best 0.583, LogME 0.554)", result, targets)
    if not PARC_CSV.is_file():
        print(f"\n(skipped PARC: {PARC_CSV} absent)")
    else:
        from mnc_core.kb.importers.parc import import_parc

        kb = import_parc(PARC_CSV).kb
        result, _ = timed("PARC LOO (all datasets)",
                          lambda: protocols.leave_one_out(kb, EngineSettings(), 0))
        quality_table("PARC", result, kb.datasets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", action="store_true", help="also time the sparsity sweep")
    parser.add_argument("--no-real", action="store_true", help="skip TransferGraph and PARC")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%X")
    kb = make_zoo_demo_kb()
    full = speed(kb, args.sparsity)
    quality_table("demo KB (synthetic, CLIP-FID-like)", full, kb.datasets)
    if not args.no_real:
        real_benchmarks()


if __name__ == "__main__":
    main()
