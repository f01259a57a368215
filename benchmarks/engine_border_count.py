"""CatBoost `border_count` 32 vs 8: M&C quality over seeds and the CPU it costs (issue 14).

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/engine_border_count.py \
        [--borders 32,8] [--seeds 3] [--kb demo,tg]

Why: the ranker fits are most of a leave-one-out run's CPU, and fewer feature borders
make each CatBoost iteration cheaper. Adopted only if M&C's leave-one-out OSR and
weighted tau stay within the seed-to-seed spread on the demo KB and on TransferGraph
text (the 8 published targets, default import with the LoRA records). Prints, per KB
and border count, the mean over seeds and each seed's value, and the CPU seconds of
the whole leave-one-out (this process and its fit workers). Output kept in
`benchmarks/results/engine_border_count.txt`.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time
from dataclasses import replace

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from mnc_core.engine import protocols  # noqa: E402
from mnc_core.engine.inputs import BOTH  # noqa: E402
from mnc_core.engine.predict import EngineSettings  # noqa: E402


def cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def knowledge_bases(names: list[str]) -> dict:
    out = {}
    if "demo" in names:
        from mnc_core.kb.demo import make_zoo_demo_kb

        out["demo"] = (make_zoo_demo_kb(), None)
    if "tg" in names:
        from engine_tg_quality import TG_DIR, published

        from mnc_core.kb.importers.transfergraph import import_transfergraph

        out["tg"] = (import_transfergraph(TG_DIR).kb, published()[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--borders", default="32,8")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--kb", default="demo,tg")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    borders = [int(b) for b in args.borders.split(",")]
    for name, (kb, targets) in knowledge_bases(args.kb.split(",")).items():
        for border in borders:
            base = EngineSettings()
            settings = replace(base, catboost=replace(base.catboost, border_count=border))
            osr, wtau, spent = [], [], []
            for seed in range(args.seeds):
                before = cpu()
                result = protocols.leave_one_out(kb, settings, seed, targets, {"mnc": BOTH})
                spent.append(cpu() - before)
                mean = result["methods"]["mnc"]["mean"]
                osr.append(mean["osr"])
                wtau.append(mean["wtau"])
            print(f"{name:<5} border_count {border:>3}: OSR {np.mean(osr):.3f} "
                  f"{[round(v, 3) for v in osr]}  wtau {np.mean(wtau):.3f} "
                  f"{[round(v, 3) for v in wtau]}  CPU per LOO (M&C + baselines) "
                  f"{np.mean(spent):.1f} s", flush=True)


if __name__ == "__main__":
    main()
