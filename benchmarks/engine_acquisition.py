"""Acquisition simulation: which pairs to fine-tune for the knowledge base (issue 13).

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/engine_acquisition.py \
        [--kbs demo,tg,parc] [--seeds 3] [--batch-share 0.1] [--method mnc] [--cache DIR]
(outputs: benchmarks/results/engine_acquisition.json, .txt and one PNG per KB)

Per KB and seed (`mnc_core.engine.acquisition.simulate`): start from a seeded 30 %
of the model-dataset edges, acquire the hidden ones in batches (`--batch-share` of
all edges each) by the policy and by random choice, and after each batch run a
leave-one-dataset-out with M&C on the acquired edges, judged by the full KB's truth
(the TransferGraph KB: its 8 published targets; the others: every dataset).
Figures: regret@1 and fine-tunings to near-best against edges acquired, mean over
seeds; the edges each policy needs until the seed-mean regret@1 reaches the dense
KB's (`first`) and until it stays there (`stays`: no later point above it). Goal:
the policy needs at most half the edges random acquisition needs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from mnc_core.engine.acquisition import POLICIES, edges_to_reach, simulate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = {"demo": "demo KB", "tg": "TransferGraph text", "parc": "PARC"}


def mean_curve(runs: list[dict], policy: str) -> list[dict]:
    """The seeds' curves averaged point by point (every seed has the same grid)."""
    curves = [r["policies"][policy]["curve"] for r in runs]
    out = []
    for points in zip(*curves, strict=True):
        out.append({
            "acquired": points[0]["acquired"], "share": points[0]["share"],
            "regret@1": float(np.mean([p["regret@1"] for p in points])),
            "fine_tunings_to_near_best": float(np.mean(
                [p["fine_tunings_to_near_best"] for p in points])),
        })
    return out


def edges_to_stay(curve: list[dict], target: float, slack: float = 1e-12) -> int | None:
    """Acquired edges from which on the curve's regret@1 never rises above `target`."""
    above = [i for i, p in enumerate(curve) if p["regret@1"] > target + slack]
    if not above:
        return int(curve[0]["acquired"])
    last = above[-1]
    return None if last == len(curve) - 1 else int(curve[last + 1]["acquired"])


def summarise(runs: list[dict]) -> dict:
    dense = float(np.mean([r["dense"]["regret@1"] for r in runs]))
    out = {"dense_regret@1": dense,
           "dense_fine_tunings": float(np.mean([r["dense"]["fine_tunings_to_near_best"]
                                                for r in runs])),
           "edges": runs[0]["edges"], "start": runs[0]["start"], "batch": runs[0]["batch"],
           "policies": {}}
    for policy in POLICIES:
        curve = mean_curve(runs, policy)
        out["policies"][policy] = {
            "curve": curve,
            "first": edges_to_reach(curve, dense),
            "stays": edges_to_stay(curve, dense),
            "per_seed_first": [r["policies"][policy]["edges_to_dense"] for r in runs],
        }
    for key in ("first", "stays"):
        mine, other = out["policies"]["policy"][key], out["policies"]["random"][key]
        out[f"goal_{key}"] = (mine is not None and other is not None and mine <= 0.5 * other
                              if other else None)
    return out


def plot(name: str, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for policy, style in zip(POLICIES, ("-o", "--s"), strict=True):
        curve = summary["policies"][policy]["curve"]
        x = [p["acquired"] for p in curve]
        axes[0].plot(x, [p["regret@1"] for p in curve], style, label=policy, ms=3)
        axes[1].plot(x, [p["fine_tunings_to_near_best"] for p in curve], style, label=policy,
                     ms=3)
    axes[0].axhline(summary["dense_regret@1"], color="grey", lw=0.8, label="dense KB")
    axes[1].axhline(summary["dense_fine_tunings"], color="grey", lw=0.8, label="dense KB")
    axes[0].set_ylabel("regret@1 (KB unit)")
    axes[1].set_ylabel("fine-tunings to near-best")
    for ax in axes:
        ax.set_xlabel(f"edges acquired (start {summary['start']} of {summary['edges']})")
        ax.legend(fontsize=8)
    fig.suptitle(f"{NAMES[name]}: acquisition by policy vs random (M&C leave-one-out, "
                 "mean over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(name: str, summary: dict, seeds: int) -> str:
    lines = [f"{NAMES[name]} ({seeds} seeds; {summary['edges']} edges, start {summary['start']},"
             f" batches of {summary['batch']}; dense regret@1 {summary['dense_regret@1']:.4f},"
             f" fine-tunings {summary['dense_fine_tunings']:.2f})"]
    for policy in POLICIES:
        s = summary["policies"][policy]
        curve = " ".join(f"{p['acquired']}:{p['regret@1']:.3f}/{p['fine_tunings_to_near_best']:.2f}"
                         for p in s["curve"])
        lines.append(f"  {policy:<7} edges to dense regret@1: first {s['first']}, stays "
                     f"{s['stays']} (per seed first {s['per_seed_first']})")
        lines.append(f"          acquired:regret@1/fine-tunings  {curve}")
    lines.append(f"  goal policy <= 0.5x random: first {summary['goal_first']}, "
                 f"stays {summary['goal_stays']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kbs", default="demo,tg,parc")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-share", type=float, default=0.1)
    parser.add_argument("--method", default="mnc", choices=("mnc", "overall"))
    parser.add_argument("--cache", type=Path, default=None,
                        help="Folder of per-seed JSON results (reruns skip those present).")
    parser.add_argument("--out", type=Path, default=RESULTS / "engine_acquisition.json")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from engine_decisions import load_kb, write_report

    report, texts = {}, []
    for name in args.kbs.split(","):
        kb, targets = load_kb(name)
        runs = []
        for seed in range(args.seeds):
            path = (args.cache / f"acq_{name}_{args.method}_{args.batch_share:g}_{seed}.json"
                    if args.cache else None)
            if path is not None and path.exists():
                runs.append(json.loads(path.read_text()))
                continue
            run = simulate(kb, seed=seed, batch_share=args.batch_share, method=args.method,
                           targets=targets)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(run))
            runs.append(run)
        summary = summarise(runs)
        report[name] = {"seeds": args.seeds, "method": args.method, **summary,
                        "runs": runs}
        plot(name, summary, args.out.with_name(f"{args.out.stem}_{name}.png"))
        texts.append(table(name, summary, args.seeds))
        print(texts[-1], flush=True)
    write_report(args.out, report, texts)


if __name__ == "__main__":
    main()
