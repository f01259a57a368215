"""The end-to-end demo, all through Dagster, on the instance the UI then opens.

    python -m mnc_assets.demo              # tiny zoo: train, score, rank, evaluate, sensor
    python -m mnc_assets.demo --kb-only    # the demo knowledge base alone (no training)

Tiny mode builds a zoo of three tiny random-weight pipelines (SD 1.5, SDXL, PixArt)
and four generated datasets, fine-tunes and scores every pair, builds the knowledge,
graph, ranker and near-best calibration (so the recommendation carries each model's
near-best probability and the shortlist), runs the leave-one-out evaluation, then
lands a fifth dataset in the landing folder and lets the landing sensor (run by the
Dagster daemon) rank it.
Knowledge-base mode imports `mnc demo-kb`'s knowledge (the paper's ten zoo models,
synthetic scores) and produces its full-scale tables. Both end by printing where the
results are and the one command that opens the UI on them.
"""

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEW_DATASET = ("pets-new", "scenes", 7)  # landed last, ranked by the sensor
SENSOR_TIMEOUT_S = 900
ENV_FILE = "platform.env"  # the demo's settings, read by `make ui ROOT=<root>`


def _say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


class DemoPlatform:
    """The demo's definitions and instance, and a way to materialise named assets."""

    def __init__(self, env: dict[str, str]) -> None:
        import dagster as dg

        import definitions

        self.env = env
        self.defs = definitions.build_defs(env)
        self.instance = dg.DagsterInstance.get()
        self.warehouse = self.defs.resources["warehouse"]
        self.layout = self.defs.resources["artifacts"].layout

    def materialize(self, keys: Sequence[str], partition: str | None = None) -> None:
        import dagster as dg

        wanted = {dg.AssetKey(k) for k in keys}
        assets = [a for a in self.defs.assets if wanted & set(a.keys)]
        checks = [c for c in self.defs.asset_checks or []
                  if any(k.asset_key in wanted for k in c.check_keys)]
        started = time.perf_counter()
        # Dagster's per-event DEBUG lines would bury the demo's progress: warnings only
        # (every event is still in the instance, as the UI shows).
        dg.materialize([*assets, *checks], instance=self.instance,
                       resources=self.defs.resources, partition_key=partition,
                       run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        where = f" [{partition}]" if partition else ""
        _say(f"  {', '.join(keys)}{where}: {time.perf_counter() - started:.1f} s")


def _environment(root: Path, kb_only: bool) -> dict[str, str]:
    """The platform's settings for this demo, exported so the daemon and UI see the same."""
    from mnc_resources.instance import prepare_dagster_home

    env = {"MNC_DATA_ROOT": str(root), "MNC_PROFILE": "tiny"}
    if kb_only:
        env["MNC_KB_FOLDERS"] = str(root / "imported" / "demo-kb")
    env["DAGSTER_HOME"] = str(prepare_dagster_home(root / "dagster_home"))
    os.environ.update(env)
    root.mkdir(parents=True, exist_ok=True)
    (root / ENV_FILE).write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


def _ui_command(env: dict[str, str]) -> str:
    """`make ui` reads the settings from the root's platform.env (the UI sees what we saw)."""
    return f"make ui ROOT={env['MNC_DATA_ROOT']}"


def _print_tables(platform: DemoPlatform, dataset: str) -> None:
    from mnc_assets.metadata import markdown_table

    rows = platform.warehouse.read_table("recommendations", {"dataset": dataset})
    print(f"\nRecommendation for {dataset} (best first):")
    print(markdown_table(rows[["rank", "model", "goodness", "confidence", "known_score",
                               "near_best_probability", "in_shortlist"]]))
    latest = platform.warehouse.read(
        "SELECT method, metric, value FROM evaluations WHERE protocol = 'loo' AND level = 'all' "
        "AND run_id = (SELECT run_id FROM evaluations WHERE protocol = 'loo' "
        "ORDER BY evaluated_at DESC LIMIT 1)")
    table = latest.pivot(index="method", columns="metric", values="value").reset_index()
    keep = [c for c in ("method", "osr", "wtau", "o2b", "o2o", "top1") if c in table.columns]
    print("\nLeave-one-out evaluation (latest run):")
    print(markdown_table(table[keep]))


def run_tiny(root: Path) -> str:
    """Train and score the tiny zoo, build and evaluate, then let the sensor rank a new dataset."""
    from mnc_assets.partitions import add_datasets, add_models, pair_key
    from mnc_core.t2i.tiny_world import build_tiny_zoo, make_tiny_datasets

    env = _environment(root, kb_only=False)
    platform = DemoPlatform(env)
    _say("building the tiny zoo (3 families) and 4 datasets")
    models = build_tiny_zoo(platform.layout.model_dir("x").parent)
    datasets = make_tiny_datasets(platform.layout.dataset_dir("x").parent)
    add_models(platform.instance, models)
    add_datasets(platform.instance, datasets)
    _say(f"models {models}; datasets {datasets}")
    for model in models:
        platform.materialize(["model_pipeline", "model_feature_row"], model)
    for dataset in datasets:
        platform.materialize(["dataset_manifest", "dataset_embedding", "dataset_distance_row"],
                             dataset)
    _say(f"fine-tuning and scoring {len(models) * len(datasets)} pairs")
    for model in models:
        for dataset in datasets:
            platform.materialize(["lora_checkpoint", "pair_samples", "fid_edge"],
                                 pair_key(model, dataset))
    _say("knowledge, matching graph, Node2Vec+, ranker, near-best calibration; "
         "leave-one-out evaluation")
    platform.materialize(["imported_knowledge", "fid_edges", "knowledge_base", "matching_graph",
                          "node2vec_embeddings", "ranker", "near_best_calibration"])
    platform.materialize(["leave_one_out_evaluation"])
    new = _land_and_wait_for_sensor(platform)
    _print_tables(platform, new)
    return _ui_command(env)


def _land_and_wait_for_sensor(platform: DemoPlatform) -> str:
    """Land a new dataset (marker last) and let the daemon's sensor rank it."""
    from mnc_assets.automation import READY_MARKER
    from mnc_core.t2i.synthetic_data import make_synthetic_dataset

    dataset, family, seed = NEW_DATASET
    landing = Path(platform.defs.resources["dataset_store"].landing_dir(dataset))
    if not (landing / READY_MARKER).is_file():
        make_synthetic_dataset(landing, family, n_images=12, seed=seed, size=32, overwrite=True)
        (landing / READY_MARKER).touch()
    _say(f"landed {landing}; starting the Dagster daemon so the landing sensor ranks it")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
        cwd=REPO, env={**os.environ, **platform.env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        _wait_for_recommendation(platform, dataset)
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
    return dataset


def _wait_for_recommendation(platform: DemoPlatform, dataset: str) -> None:
    import dagster as dg

    started = time.monotonic()
    while time.monotonic() - started < SENSOR_TIMEOUT_S:
        records = platform.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("recommendation"),
                                  asset_partitions=[dataset]), limit=1).records
        if records:
            _say(f"  the sensor's run ranked {dataset} "
                 f"({time.monotonic() - started:.0f} s after the daemon started)")
            return
        time.sleep(3)
    raise SystemExit(f"the sensor's run did not rank {dataset} within {SENSOR_TIMEOUT_S} s; "
                     "open the UI (Runs, Sensors) to see why")


def _write_demo_kb(folder: Path) -> None:
    """`mnc demo-kb --out folder` in a child process. Deriving the zoo models' features
    from their configs imports torch (diffusers' config classes), which this platform
    process never needs otherwise: keeping it out saves its import, and spares the user
    DuckDB 2.0's "nanobind: leaked instances" report at exit, which torch loaded beside
    the platform's DuckDB triggers (harmless, exit 0, but alarming)."""
    child = subprocess.run([sys.executable, "-c", "from mnc_core.cli import app; app()",
                            "demo-kb", "--out", str(folder), "--seed", "0"],
                           capture_output=True, text=True)
    if child.returncode != 0:  # its progress lines are noise; its error is not
        raise SystemExit(f"mnc demo-kb --out {folder} failed (exit {child.returncode}):\n"
                         f"{child.stderr[-4000:]}")


def run_kb_only(root: Path) -> str:
    """The platform on the bundled demo knowledge base alone: full-scale tables, no training."""
    from mnc_assets.partitions import add_datasets

    env = _environment(root, kb_only=True)
    folder = Path(env["MNC_KB_FOLDERS"])
    if not (folder / "kb.json").is_file():
        _say("writing the demo knowledge base (10 zoo models x 32 datasets, synthetic scores)")
        _write_demo_kb(folder)
    platform = DemoPlatform(env)
    platform.materialize(["imported_knowledge", "fid_edges", "knowledge_base", "matching_graph",
                          "node2vec_embeddings", "ranker", "near_best_calibration"])
    from mnc_core.kb.store import read_kb

    datasets = read_kb(folder).datasets
    add_datasets(platform.instance, datasets)
    platform.materialize(["recommendation"], datasets[0])
    platform.materialize(["leave_one_out_evaluation"])
    platform.materialize(["staged_fid_edges", "per_dataset_ranks", "overall_ranking",
                          "matrix_coverage", "evaluation_history", "latest_evaluation"])
    _print_tables(platform, datasets[0])
    return _ui_command(env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb-only", action="store_true",
                        help="run on the bundled demo knowledge base alone (no training)")
    parser.add_argument("--root", type=Path, default=None,
                        help="data root (default out/demo or out/demo-kb in the repository)")
    args = parser.parse_args(argv)
    root = (args.root or REPO / "out" / ("demo-kb" if args.kb_only else "demo")).resolve()
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ["HF_HUB_OFFLINE"] = "1"
    started = time.perf_counter()
    command = run_kb_only(root) if args.kb_only else run_tiny(root)
    _say(f"done in {time.perf_counter() - started:.0f} s")
    print(f"\nResults: warehouse {root / 'warehouse' / 'mnc.duckdb'}, artifacts under {root}")
    print(f"Open the UI on them:\n  {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
