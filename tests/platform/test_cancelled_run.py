"""A Dagster run cancelled while the engine's fit workers run (SIGTERM to the run, which
Dagster turns into an interrupt of its step) ends with every process gone, nothing
half-written, and a re-run that works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

from mnc_core.kb.demo import make_demo_kb
from mnc_core.kb.store import write_kb
from mnc_resources.instance import prepare_dagster_home

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
KNOWLEDGE = {"imported_knowledge", "fid_edges", "knowledge_base"}


def _environment(tmp_path: Path) -> dict[str, str]:
    kb = write_kb(make_demo_kb(seed=0, n_datasets=8, n_models=5), tmp_path / "kb")
    return {"DAGSTER_HOME": str(prepare_dagster_home(tmp_path / "home")),
            "MNC_DATA_ROOT": str(tmp_path / "data"), "MNC_KB_FOLDERS": str(kb)}


def _materialize_knowledge(env: dict[str, str]) -> None:
    import definitions

    defs = definitions.build_defs(env)
    assets = [a for a in defs.assets if {k.to_user_string() for k in a.keys} & KNOWLEDGE]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        dg.materialize([*assets, *defs.asset_checks], instance=instance,
                       resources=defs.resources)


def _launch_evaluation(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-f",
         "definitions.py", "--select", "leave_one_out_evaluation"],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )


def _wait_for_fit_workers(run: psutil.Process, timeout: float = 600) -> list[psutil.Process]:
    """The run's processes once the engine's spawned fit workers are up."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        family = run.children(recursive=True)
        spawned = [p for p in family if "spawn_main" in " ".join(_cmdline(p))]
        if len(spawned) >= 3:  # the step process and at least two fit workers
            return family
        time.sleep(0.5)
    raise AssertionError("the evaluation never started its fit workers")


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_a_cancelled_evaluation_run_leaves_no_process_and_no_partial_rows(tmp_path):
    env = _environment(tmp_path)
    _materialize_knowledge(env)
    launched = _launch_evaluation(env)
    family = _wait_for_fit_workers(psutil.Process(launched.pid))
    os.kill(launched.pid, signal.SIGTERM)
    output, _ = launched.communicate(timeout=120)
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    assert launched.returncode != 0
    assert "DagsterExecutionInterruptedError" in output
    staged = [p for p in Path(env["MNC_DATA_ROOT"]).rglob(".*") if ".writing-" in p.name]
    assert staged == []
    from mnc_resources.warehouse import Warehouse

    warehouse = Warehouse(database=str(Path(env["MNC_DATA_ROOT"]) / "warehouse" / "mnc.duckdb"))
    assert warehouse.read_table("evaluations").empty  # nothing half-written
    rerun = _launch_evaluation(env)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output[-3000:]
    history = warehouse.read_table("evaluations")
    assert history["run_id"].nunique() == 1 and {"mnc", "overall"} <= set(history["method"])
