"""The local instance's dagster.yaml (mnc_resources/instance.py): Dagster loads it, the
`gpu` pool admits as many steps as there are GPUs (at least one), the daemon frees the
slots of a cancelled run 30 s after it ended, telemetry is off, and a user's file is
never overwritten."""

import datetime
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import dagster._daemon.monitoring.concurrency as slot_monitor
import pytest
from dagster._core.execution.plan.instance_concurrency_context import (
    InstanceConcurrencyContext,
)
from dagster._core.test_utils import create_run_for_test

from mnc_assets.executors import GPU_POOL
from mnc_resources.instance import count_gpus, prepare_dagster_home

REPO_ROOT = Path(__file__).resolve().parents[2]


def claims(instance: dg.DagsterInstance, n_runs: int) -> list[bool]:
    """Whether each of `n_runs` new runs gets a `gpu` slot for its training step, claimed
    as the executor claims it (InstanceConcurrencyContext)."""
    runs = [create_run_for_test(instance, job_name="pairs") for _ in range(n_runs)]
    return [InstanceConcurrencyContext(instance, run).claim(GPU_POOL, "lora_checkpoint")
            for run in runs]


def free_ended_runs_slots(instance: dg.DagsterInstance, seconds_later: float,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One pass of the daemon's slot monitor, `seconds_later` seconds from now."""
    now = slot_monitor.get_current_datetime()
    monkeypatch.setattr(slot_monitor, "get_current_datetime",
                        lambda: now + datetime.timedelta(seconds=seconds_later))
    list(slot_monitor.execute_concurrency_slots_iteration(
        SimpleNamespace(instance=instance), logging.getLogger(__name__)))


@pytest.mark.parametrize(("gpus", "limit"), [(0, 1), (1, 1), (3, 3)])
def test_gpu_pool_admits_one_step_per_gpu(tmp_path: Path, gpus: int, limit: int) -> None:
    home = prepare_dagster_home(tmp_path / "home", gpus=gpus)
    assert home == (tmp_path / "home").resolve()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == limit
        assert claims(instance, limit + 1) == [True] * limit + [False]
        [pool] = instance.event_log_storage.get_pool_limits()
        assert (pool.name, pool.limit) == (GPU_POOL, limit)


def test_cancelled_run_frees_its_slot_after_30_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = prepare_dagster_home(tmp_path, gpus=1)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        holder = create_run_for_test(instance, job_name="pairs")
        assert InstanceConcurrencyContext(instance, holder).claim(GPU_POOL, "lora_checkpoint")
        waiter = create_run_for_test(instance, job_name="pairs")
        assert not InstanceConcurrencyContext(instance, waiter).claim(GPU_POOL, "pair_samples")

        instance.report_run_canceled(holder)  # its worker died without freeing the slot
        free_ended_runs_slots(instance, 10, monkeypatch)
        held = instance.event_log_storage.get_concurrency_info(GPU_POOL).claimed_slots
        assert [slot.run_id for slot in held] == [holder.run_id]

        free_ended_runs_slots(instance, 31, monkeypatch)
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).claimed_slots == []
        assert InstanceConcurrencyContext(instance, waiter).claim(GPU_POOL, "pair_samples")


def test_telemetry_is_off(tmp_path: Path) -> None:
    with dg.DagsterInstance.from_config(str(prepare_dagster_home(tmp_path, gpus=0))) as instance:
        assert instance.telemetry_enabled is False


def test_existing_dagster_yaml_is_left_as_it_is(tmp_path: Path) -> None:
    mine = b"# my settings\nconcurrency:\n  pools:\n    default_limit: 7\n"
    (tmp_path / "dagster.yaml").write_bytes(mine)
    assert prepare_dagster_home(tmp_path, gpus=2) == tmp_path.resolve()
    assert (tmp_path / "dagster.yaml").read_bytes() == mine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dagster.yaml"]


def test_a_written_file_is_not_rewritten(tmp_path: Path) -> None:
    prepare_dagster_home(tmp_path, gpus=1)
    first = (tmp_path / "dagster.yaml").read_text()
    prepare_dagster_home(tmp_path, gpus=4)
    assert (tmp_path / "dagster.yaml").read_text() == first
    assert "default_limit: 1\n" in first


def test_default_home_is_inside_the_data_root(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNC_DATA_ROOT", str(tmp_path / "data"))
    home = prepare_dagster_home(gpus=0)
    assert home == (tmp_path / "data" / "dagster_home").resolve()
    assert (home / "dagster.yaml").is_file()


def test_negative_gpu_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="-1"):
        prepare_dagster_home(tmp_path, gpus=-1)
    assert not (tmp_path / "dagster.yaml").exists()


def fake_nvidia_smi(folder: Path, listing: str, status: int = 0) -> Path:
    """A folder holding an `nvidia-smi` that prints `listing` for `-L` and exits `status`."""
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = -L ] || exit 64\nprintf '{listing}'\nexit {status}\n")
    script.chmod(0o755)
    return folder


TWO_GPUS = ("GPU 0: NVIDIA H100 (UUID: GPU-aaa)\\n"
            "  MIG 1g.10gb Device 0: (UUID: MIG-bbb)\\n"
            "GPU 1: NVIDIA H100 (UUID: GPU-ccc)\\n")


def test_gpus_are_counted_with_nvidia_smi(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path / "bin", TWO_GPUS)))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert count_gpus() == 2
    home = prepare_dagster_home(tmp_path / "home")
    assert "default_limit: 2\n" in (home / "dagster.yaml").read_text()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert count_gpus() == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,1")
    assert count_gpus() == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert count_gpus() == 0


def test_no_or_failing_nvidia_smi_counts_no_gpu_and_limit_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path / "broken", TWO_GPUS, status=9)))
    assert count_gpus() == 0
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert count_gpus() == 0
    home = prepare_dagster_home(tmp_path / "home")
    assert "default_limit: 1\n" in (home / "dagster.yaml").read_text()


def test_module_prints_only_the_home_path(tmp_path: Path) -> None:
    env = {**os.environ, "MNC_DATA_ROOT": str(tmp_path), "PATH": str(tmp_path / "no-bin")}
    out = subprocess.run([sys.executable, "-m", "mnc_resources.instance"], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout == f"{(tmp_path / 'dagster_home').resolve()}\n"
    assert (tmp_path / "dagster_home" / "dagster.yaml").is_file()
