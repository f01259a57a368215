"""Platform speed (issue 11): loading the definitions, and a recommendation through Dagster.

1. Loading the definitions (what every run worker and code-location reload pays) against
   a bare `import dagster`, each in a fresh process, median of `--repeats` runs.
   Target: at most 2.5x.
2. One dataset's recommendation materialised in-process through Dagster (`materialize`
   of the `recommendation` asset: knowledge assembled from the warehouse, ranked,
   written back, table and plot in metadata) against the engine's own ranking of that
   dataset (`rank_new_dataset` on the same knowledge) in the same process, both warm
   (imports paid, one call of each made first), median of `--repeats`. Target: 1.5x.
   Beside them, the floor: a trivial partitioned asset (no resources, one metadata
   entry) materialised the same way, what Dagster's run and event bookkeeping costs.
   The knowledge is the demo knowledge base (`make_zoo_demo_kb`: the ten zoo models,
   32 datasets) imported into a platform on a temporary data root.

    .venv/bin/python benchmarks/platform_bench.py [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _cold_import(statement: str) -> float:
    """Wall seconds of `python -c statement` in a fresh process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - started


def load_times(repeats: int) -> dict:
    bare, defs = [], []
    for _ in range(repeats):  # interleaved, like the recommendation timings
        bare.append(_cold_import("import dagster"))
        defs.append(_cold_import("import definitions"))
    ratio = statistics.median(defs) / statistics.median(bare)
    return {"import_dagster_s": bare, "import_definitions_s": defs,
            "median_ratio": round(ratio, 2), "target_ratio": 2.5}


def recommendation_times(repeats: int) -> dict:
    import dagster as dg

    import definitions
    from mnc_assets.knowledge import CURRENT
    from mnc_assets.partitions import add_datasets
    from mnc_core.engine.predict import rank_new_dataset
    from mnc_core.kb.demo import make_zoo_demo_kb
    from mnc_core.kb.store import read_kb, write_kb

    with tempfile.TemporaryDirectory() as tmp:
        kb_folder = write_kb(make_zoo_demo_kb(seed=0), Path(tmp) / "demo-kb")
        env = {"MNC_DATA_ROOT": str(Path(tmp) / "root"), "MNC_KB_FOLDERS": str(kb_folder)}
        defs = definitions.build_defs(env)
        wanted = {"imported_knowledge", "fid_edges", "knowledge_base"}
        stage = [a for a in defs.assets if {k.to_user_string() for k in a.keys} & wanted]
        recommendation = [a for a in defs.assets
                          if dg.AssetKey("recommendation") in a.keys]
        engine = defs.resources["engine"]
        trivial = _trivial_asset([f"p{i}" for i in range(repeats + 1)])
        with dg.instance_for_test() as instance:
            dg.materialize(stage, instance=instance, resources=defs.resources)
            kb = read_kb(defs.resources["artifacts"].layout.knowledge_dir(CURRENT))
            datasets = kb.datasets[: repeats + 1]
            add_datasets(instance, datasets)

            def through_dagster(dataset: str) -> float:
                started = time.perf_counter()
                dg.materialize(recommendation, instance=instance, resources=defs.resources,
                               partition_key=dataset)
                return time.perf_counter() - started

            def engine_only(dataset: str) -> float:
                started = time.perf_counter()
                rank_new_dataset(kb, dataset, engine.settings(), engine.seed)
                return time.perf_counter() - started

            def floor(key: str) -> float:
                started = time.perf_counter()
                dg.materialize([trivial], instance=instance, partition_key=key)
                return time.perf_counter() - started

            engine_only(datasets[0])  # warm-up: imports, numba kernels, CatBoost
            through_dagster(datasets[0])
            floor("p0")
            engine_s, dagster_s, floor_s = [], [], []
            for i, dataset in enumerate(datasets[1:], 1):  # interleaved: drift hits all alike
                engine_s.append(engine_only(dataset))
                dagster_s.append(through_dagster(dataset))
                floor_s.append(floor(f"p{i}"))
    ratio = statistics.median(dagster_s) / statistics.median(engine_s)
    return {"engine_rank_s": engine_s, "dagster_recommendation_s": dagster_s,
            "dagster_trivial_asset_s": floor_s,
            "median_ratio": round(ratio, 2), "target_ratio": 1.5,
            "knowledge": "make_zoo_demo_kb(seed=0): 10 models x 32 datasets"}


def _trivial_asset(keys: list[str]):
    """A partitioned asset doing nothing: the floor of a materialisation through Dagster."""
    import dagster as dg

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(keys))
    def trivial():
        return dg.MaterializeResult(metadata={"rows": 0})

    return trivial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cpu = time.process_time()
    result = {"load": load_times(args.repeats), "recommendation": recommendation_times(
        args.repeats), "cpu_count": os.cpu_count()}
    result["process_cpu_s"] = round(time.process_time() - cpu, 1)
    for name, part in (("load definitions / import dagster", result["load"]),
                       ("recommendation via Dagster / engine", result["recommendation"])):
        print(f"{name}: median ratio {part['median_ratio']} (target <= {part['target_ratio']})")
    load = result["load"]
    print(f"  import dagster {statistics.median(load['import_dagster_s']):.2f} s, "
          f"import definitions {statistics.median(load['import_definitions_s']):.2f} s")
    rec = result["recommendation"]
    print(f"  engine {statistics.median(rec['engine_rank_s']):.2f} s, "
          f"through Dagster {statistics.median(rec['dagster_recommendation_s']):.2f} s, "
          f"trivial asset {statistics.median(rec['dagster_trivial_asset_s']):.2f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
