"""Time from a complete dataset folder landing to its recommendation, through the real daemon.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/platform_sensor_latency.py [--new 5]

The knowledge (set up first, not timed): a synthetic demo KB whose datasets are renamed
to platform datasets (`<synthetic family>-<kk>`, one synthetic image family per demo
family), imported with MNC_KB_FOLDERS; those datasets are generated as tiny image
folders and embedded through the platform (manifest, CLIP embedding, FID row), so a new
dataset's FID distances reach datasets with known model scores, and the knowledge
(fid_edges + checks, knowledge base, graph, Node2Vec+, ranker) is materialised.

Then `dagster-daemon run -w workspace.yaml` runs on an instance prepared by
`prepare_dagster_home` (the platform's dagster.yaml; only the asset-automation daemon
is switched off, so runs it would start after a ranking do not overlap the next
measurement). Each new dataset is written beside the landing folder, moved in and
marked `_READY`; the figure per dataset is the time from the start of the sensor tick
that picked it up to the recommendation's materialisation (the sensor interval is
excluded; the tick, the run queue, the run launch and every step are included). One
warm-up dataset first (the code server's first tick imports torch for validation).

Also measured, for where the time goes: the run's phases from its event log (queued,
launch, process start, each step), a cold process profile of the recommendation step
(imports, CLIP load, knowledge assembly, Node2Vec+ with its numba compile, CatBoost
fit), and the rank job with Dagster's multiprocess executor (one process per step)
against the in-process executor the job uses, each run in a fresh process.
Figures go to stdout and benchmarks/results/platform_sensor_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = REPO / "benchmarks" / "results" / "platform_sensor_latency.json"
FAMILIES = ("shapes", "glyphs", "scenes", "textures")
RANK_STEPS = ("dataset_manifest", "dataset_embedding", "dataset_distance_row", "recommendation")


def platform_kb(n_datasets: int, n_models: int):
    """The demo KB with its datasets renamed to platform ids: {id: synthetic family}, KB."""
    from mnc_core.kb.demo import dataset_family, make_demo_kb

    kb = make_demo_kb(seed=0, n_datasets=n_datasets, n_models=n_models)
    families = list(dict.fromkeys(dataset_family(d) for d in kb.datasets))
    names = {d: f"{FAMILIES[families.index(dataset_family(d)) % len(FAMILIES)]}-"
                f"{d.rsplit('-', 1)[1]}" for d in kb.datasets}
    distances = kb.dataset_distances.assign(dataset_a=kb.dataset_distances["dataset_a"].map(names),
                                            dataset_b=kb.dataset_distances["dataset_b"].map(names))
    kb = replace(kb, edges=kb.edges.assign(dataset=kb.edges["dataset"].map(names)),
                 dataset_features=kb.dataset_features.rename(index=names),
                 dataset_distances=distances)
    return {n: n.rsplit("-", 1)[0] for n in names.values()}, kb


def environment(root: Path, kb_folder: Path) -> dict[str, str]:
    return {"MNC_DATA_ROOT": str(root), "MNC_PROFILE": "tiny", "MNC_KB_FOLDERS": str(kb_folder),
            "DAGSTER_HOME": str(root / "dagster_home")}


def set_up(root: Path, n_known: int, n_models: int) -> dict[str, str]:
    """Knowledge and known datasets materialised through the platform; returns the env."""
    import dagster as dg

    from mnc_core.kb.store import write_kb
    from mnc_core.t2i.synthetic_data import make_synthetic_dataset
    from mnc_resources.instance import prepare_dagster_home

    known, kb = platform_kb(n_known, n_models)
    env = environment(root, write_kb(kb, root / "imported-kb"))
    home = prepare_dagster_home(Path(env["DAGSTER_HOME"]))
    with (home / "dagster.yaml").open("a") as f:
        f.write("\n# benchmark only: no automation runs between measurements\n"
                "auto_materialize:\n  enabled: false\n")
    os.environ.update(env)
    import definitions
    from mnc_assets.partitions import add_datasets

    defs = definitions.build_defs(env)
    for seed, (dataset, family) in enumerate(sorted(known.items())):
        make_synthetic_dataset(root / "datasets" / dataset, family, n_images=12, seed=seed,
                               size=32)
    instance = dg.DagsterInstance.get()
    add_datasets(instance, sorted(known))
    stage = [a for a in defs.assets if {k.to_user_string() for k in a.keys} & set(RANK_STEPS[:3])]
    for dataset in sorted(known):
        dg.materialize(stage, instance=instance, resources=defs.resources, partition_key=dataset)
    assert defs.resolve_job_def("refresh_knowledge_job").execute_in_process(
        instance=instance).success
    return env


def land(root: Path, dataset: str, family: str, seed: int) -> float:
    """Write a complete dataset folder into the landing folder; the time it became complete."""
    from mnc_assets.automation import READY_MARKER
    from mnc_core.t2i.synthetic_data import make_synthetic_dataset

    source = make_synthetic_dataset(root / "incoming" / dataset, family, n_images=12,
                                    seed=seed, size=32)
    (root / "landing").mkdir(exist_ok=True)
    target = shutil.move(source, root / "landing" / dataset)
    (Path(target) / READY_MARKER).touch()
    return time.time()


def wait_recommended(instance, dataset: str, timeout: float = 300) -> float:
    """The timestamp of the dataset's recommendation materialisation (fails on a failed run)."""
    import dagster as dg

    deadline = time.time() + timeout
    while time.time() < deadline:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("recommendation"),
                                  asset_partitions=[dataset]), limit=1).records
        if records:
            return records[0].timestamp
        failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE],
                                                 tags={"dagster/partition": dataset}))
        if failed:
            raise RuntimeError(f"the rank run for {dataset} failed: {failed[0].run_id}")
        time.sleep(0.2)
    raise TimeoutError(f"no recommendation for {dataset} after {timeout} s")


def wait_idle(instance, timeout: float = 300) -> None:
    import dagster as dg

    busy = [s for s in dg.DagsterRunStatus if s not in (
        dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
    deadline = time.time() + timeout
    while instance.get_runs(dg.RunsFilter(statuses=busy)) and time.time() < deadline:
        time.sleep(0.5)


def tick_for(instance, run_id: str):
    """The landing sensor's tick that requested `run_id`."""
    from dagster._core.scheduler.instigation import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.name == "dataset_landing_sensor":
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id,
                                           limit=50):
                if run_id in tick.run_ids:
                    return tick
    return None


def run_phases(instance, dataset: str) -> dict:
    """Queue, launch and step times of the dataset's rank run, from its records and events."""
    import dagster as dg

    (run,) = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": dataset},
                                             job_name="rank_new_dataset_job"), limit=1)
    record = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0]
    events = instance.all_logs(run.run_id)
    first = {}
    for e in events:
        if e.is_dagster_event:
            first.setdefault((e.dagster_event.event_type_value, e.step_key), e.timestamp)
    tick = tick_for(instance, run.run_id)
    phases = {"tick_start": tick.timestamp if tick else None,
              "tick_end": tick.end_timestamp if tick else None,
              "run_created": record.create_timestamp.timestamp(),
              "run_starting": first.get(("PIPELINE_STARTING", None)),
              "run_started": first.get(("PIPELINE_START", None))}
    for step in RANK_STEPS:
        phases[f"{step}_start"] = first.get(("STEP_START", step))
        phases[f"{step}_end"] = first.get(("STEP_SUCCESS", step))
    phases["run_success"] = first.get(("PIPELINE_SUCCESS", None))
    return {"run_id": run.run_id, **phases}


def durations(p: dict) -> dict:
    """Seconds per phase, from the tick start."""
    def gap(a: str, b: str):
        return None if p.get(a) is None or p.get(b) is None else round(p[b] - p[a], 2)

    out = {"tick": gap("tick_start", "tick_end"),
           "tick_end_to_run_created": gap("tick_end", "run_created"),
           "queued_to_launch": gap("run_created", "run_starting"),
           "process_start_until_run_start": gap("run_starting", "run_started"),
           "run_start_to_first_step": gap("run_started", "dataset_manifest_start")}
    for step in RANK_STEPS:
        out[step] = gap(f"{step}_start", f"{step}_end")
    return out


def daemon_latency(root: Path, env: dict[str, str], n_new: int) -> dict:
    """Land `n_new` datasets (after one warm-up) with the daemon running; per-dataset figures."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    log = (root / "daemon.log").open("w")
    daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run",
                               "-w", "workspace.yaml"], cwd=REPO, env={**os.environ, **env},
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rows = []
    try:
        for k in range(n_new + 1):
            dataset, family = f"new-{k:02d}", FAMILIES[k % 2]
            landed = land(root, dataset, family, seed=100 + k)
            done = wait_recommended(instance, dataset)
            phases = run_phases(instance, dataset)
            start = phases["tick_start"] or landed
            rows.append({"dataset": dataset, "warm_up": k == 0,
                         "landing_to_recommendation_s": round(done - landed, 2),
                         "tick_start_to_recommendation_s": round(done - start, 2),
                         "phases_s": durations(phases)})
            print(f"  {dataset}: {rows[-1]['tick_start_to_recommendation_s']:.1f} s from tick "
                  f"start ({rows[-1]['landing_to_recommendation_s']:.1f} s from landing)"
                  f"{' [warm-up]' if k == 0 else ''}", flush=True)
            wait_idle(instance)
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
        log.close()
    return {"runs": rows}


PROFILE = r"""
import json, os, sys, time
t = {}
s = time.perf_counter(); import dagster; t['import_dagster'] = time.perf_counter() - s
s = time.perf_counter(); import definitions; t['import_definitions'] = time.perf_counter() - s
defs = definitions.build_defs()
s = time.perf_counter(); import torch, open_clip
t['import_torch_open_clip'] = time.perf_counter() - s
s = time.perf_counter(); defs.resources['clip'].load(); t['clip_load'] = time.perf_counter() - s
from mnc_assets.knowledge import assemble_current_knowledge
from mnc_core.engine import predict
r = defs.resources
s = time.perf_counter()
kb = assemble_current_knowledge(r['warehouse'], r['model_store'], r['artifacts'],
                                r['knowledge_imports'], r['artifacts'].layout.knowledge_dir('p'))
t['assemble_knowledge'] = time.perf_counter() - s
phase = ['']
def timed(name, fn):
    def wrapper(*a, **k):
        s = time.perf_counter(); out = fn(*a, **k)
        t[name + phase[0]] = t.get(name + phase[0], 0) + time.perf_counter() - s
        return out
    return wrapper
predict.embed_graphs = timed('node2vec_with_compile', predict.embed_graphs)
predict._fit_all = timed('catboost_fit_predict', predict._fit_all)
s = time.perf_counter()
import catboost, pecanpy
t['import_catboost_pecanpy'] = time.perf_counter() - s
s = time.perf_counter()
predict.rank_new_dataset(kb, sys.argv[1], r['engine'].settings(), r['engine'].seed)
t['rank_new_dataset_total'] = time.perf_counter() - s
phase[0] = '_warm'
s = time.perf_counter(); predict.rank_new_dataset(kb, sys.argv[1], r['engine'].settings(), 0)
t['rank_new_dataset_warm'] = time.perf_counter() - s
print(json.dumps({k: round(v, 2) for k, v in t.items()}))
"""


def cold_profile(env: dict[str, str], dataset: str) -> dict:
    """Where a fresh run process spends its time (imports, CLIP, assembly, Node2Vec+, CatBoost)."""
    out = subprocess.run([sys.executable, "-c", PROFILE, dataset], cwd=REPO, check=True,
                         env={**os.environ, **env}, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


EXECUTOR_RUN = r"""
import sys, time
import dagster as dg
from benchmarks.platform_sensor_latency import rank_job_variant
from mnc_assets.partitions import add_datasets
s = time.perf_counter()
instance = dg.DagsterInstance.get()
add_datasets(instance, [sys.argv[2]])
result = dg.execute_job(dg.reconstructable(rank_job_variant), instance,
                        tags={"dagster/partition": sys.argv[2]}, run_config=None)
assert result.success
print(round(time.perf_counter() - s, 2))
"""


def rank_job_variant():
    """rank_new_dataset_job's assets with the executor named by MNC_BENCH_EXECUTOR."""
    import dagster as dg

    import definitions
    from mnc_assets.automation import rank_new_dataset_job
    from mnc_assets.partitions import dataset_partitions

    defs = definitions.build_defs()
    executor = {"in_process": dg.in_process_executor,
                "multiprocess": dg.multiprocess_executor}[os.environ["MNC_BENCH_EXECUTOR"]]
    job = dg.define_asset_job("rank_variant", selection=rank_new_dataset_job.selection,
                              partitions_def=dataset_partitions, executor_def=executor)
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=[job],
                          resources=defs.resources).resolve_job_def("rank_variant")


def executor_comparison(root: Path, env: dict[str, str]) -> dict:
    """Wall time of the rank job in a fresh process, in-process vs multiprocess executor."""
    times = {}
    for k, executor in enumerate(("in_process", "multiprocess", "in_process", "multiprocess")):
        dataset = f"exec-{k:02d}"
        land(root, dataset, FAMILIES[k % 2], seed=200 + k)
        (root / "landing" / dataset / "_READY").unlink()  # not for the (stopped) sensor
        out = subprocess.run(
            [sys.executable, "-c", EXECUTOR_RUN, executor, dataset], cwd=REPO, check=True,
            env={**os.environ, **env, "MNC_BENCH_EXECUTOR": executor, "PYTHONPATH": str(REPO)},
            capture_output=True, text=True)
        times.setdefault(executor, []).append(float(out.stdout.strip().splitlines()[-1]))
    return {e: {"runs_s": v, "median_s": statistics.median(v)} for e, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=int, default=5, help="timed new datasets (default 5)")
    parser.add_argument("--known", type=int, default=8, help="platform datasets with edges")
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp dir)")
    parser.add_argument("--no-executor-comparison", action="store_true")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="mnc-latency-")).resolve()
    started = time.perf_counter()
    env = set_up(root, args.known, args.models)
    setup_s = time.perf_counter() - started
    print(f"set-up (not timed below): {setup_s:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    latency = daemon_latency(root, env, args.new)
    timed = [r["tick_start_to_recommendation_s"] for r in latency["runs"] if not r["warm_up"]]
    report = {
        "goal_s": 30, "median_s": statistics.median(timed), "runs_s": timed,
        "warm_up_s": latency["runs"][0]["tick_start_to_recommendation_s"],
        "known_datasets": args.known, "models": args.models, "machine_cores": os.cpu_count(),
        "load_1min": os.getloadavg()[0], "details": latency["runs"],
        "cold_recommendation_process_s": cold_profile(env, latency["runs"][-1]["dataset"]),
    }
    if not args.no_executor_comparison:
        report["rank_job_executor_fresh_process_s"] = executor_comparison(root, env)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "details"}, indent=2))
    print(f"median {report['median_s']:.1f} s over {len(timed)} new datasets (goal <= 30 s); "
          f"written to {RESULTS.relative_to(REPO)}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
