"""The executor modes of the real definitions (definitions.build_defs): multiprocess by
default, dagster-k8s's k8s_job_executor with MNC_EXECUTOR=k8s, anything else refused.

In Kubernetes mode every step of every asset job gets its pod spec rendered the way
dagster-k8s's executor renders it (K8sStepHandler.launch_step: the step's tags through
`get_user_defined_k8s_config`, merged into the container context, then
`construct_dagster_k8s_job`), with no cluster: exactly the steps in the `gpu` pool
get an `nvidia.com/gpu` limit of 1, and no other step requests or limits a GPU.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
import pytest
from dagster._core.execution.api import create_execution_plan

from mnc_assets.executors import GPU_POOL

GPU = "nvidia.com/gpu"
# Written out so that a GPU step losing its pool or its tag fails the test, rather than
# silently leaving the set derived from the definitions.
EXPECTED_GPU_STEPS = {"lora_checkpoint", "pair_samples"}
RUN_ID = "0f4c2d6e-6a8b-4c1e-9d7a-3b5e8f1a2c4d"


def build_defs(env: Mapping[str, str]) -> dg.Definitions:
    """The real definitions for `env` (imported here: the module builds its own `defs`
    from the environment when imported, which must not decide what is collected)."""
    return importlib.import_module("definitions").build_defs(env)


@pytest.fixture(scope="module")
def dagster_k8s() -> ModuleType:
    return pytest.importorskip(
        "dagster_k8s",
        reason="dagster-k8s is not installed (optional `k8s` group; in the dev group)",
    )


@pytest.fixture(scope="module")
def k8s_defs(dagster_k8s: ModuleType, tmp_path_factory: pytest.TempPathFactory
             ) -> dg.Definitions:
    root = tmp_path_factory.mktemp("k8s-data-root")
    return build_defs({"MNC_EXECUTOR": "k8s", "MNC_DATA_ROOT": str(root)})


@pytest.fixture(scope="module")
def steps(k8s_defs: dg.Definitions) -> dict[str, Any]:
    """Step key -> execution step, over the global asset job's execution plan (every asset
    and check; the op-only jobs need run config and hold no asset step)."""
    found: dict[str, Any] = {}
    for job in [k8s_defs.resolve_implicit_global_asset_job_def()]:
        for step in create_execution_plan(job).get_all_steps_in_topo_order():
            found[step.key] = step
    return found


def render_pod(step: Any) -> Any:
    """The V1Job dagster-k8s's step handler would create for `step`."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_k8s_job_name,
        get_user_defined_k8s_config,
    )

    user_defined = get_user_defined_k8s_config(step.tags or {})
    context = K8sContainerContext(namespace="mnc").merge(
        K8sContainerContext(run_k8s_config=user_defined)
    )
    job_name = f"dagster-step-{get_k8s_job_name(RUN_ID, step.key)}"
    return construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image="mnc:test",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        args=["dagster", "api", "execute_step"],
        job_name=job_name,
        pod_name=job_name,
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/op": step.key, "dagster/run-id": RUN_ID},
    )


def gpu_resources(job: Any) -> list[tuple[str | None, str | None]]:
    """(limit, request) of `nvidia.com/gpu` for each container of the rendered pod."""
    found = []
    for container in job.spec.template.spec.containers:
        resources = container.resources
        limits = (resources.limits if resources else None) or {}
        requests = (resources.requests if resources else None) or {}
        found.append((limits.get(GPU), requests.get(GPU)))
    return found


def test_k8s_mode_uses_dagster_k8s_executor(dagster_k8s: ModuleType,
                                            k8s_defs: dg.Definitions) -> None:
    assert k8s_defs.executor is dagster_k8s.k8s_job_executor
    jobs = {job.name: job for job in k8s_defs.resolve_all_job_defs()}
    # a new dataset's four short steps, and the sequential loop's merge + re-rank, run in
    # their run's own pod, by design
    assert jobs.pop("rank_new_dataset_job").executor_def is dg.in_process_executor
    assert jobs.pop("update_recommendation_job").executor_def is dg.in_process_executor
    assert "finetune_pair_job" in jobs
    assert all(job.executor_def is dagster_k8s.k8s_job_executor for job in jobs.values())


def test_every_asset_is_a_rendered_step(k8s_defs: dg.Definitions, steps: dict[str, Any]) -> None:
    assets = {a.op.name for a in k8s_defs.resolve_asset_graph().assets_defs if a.is_executable}
    assert assets
    assert assets <= set(steps)


def test_gpu_limit_on_exactly_the_gpu_pool_steps(steps: dict[str, Any]) -> None:
    gpu_steps = {key for key, step in steps.items() if step.pool == GPU_POOL}
    assert gpu_steps == EXPECTED_GPU_STEPS
    rendered = {key: render_pod(step) for key, step in steps.items()}
    for key, job in rendered.items():
        [container] = job.spec.template.spec.containers
        assert container.image == "mnc:test", key
        if key in gpu_steps:
            assert container.resources.limits[GPU] == "1", key
            assert gpu_resources(job) == [("1", None)], key
        else:
            assert gpu_resources(job) == [(None, None)], key
    assert len(rendered) > len(gpu_steps)


def test_default_mode_is_multiprocess(tmp_path: Path) -> None:
    defs = build_defs({"MNC_DATA_ROOT": str(tmp_path)})
    assert defs.executor is dg.multiprocess_executor
    assert defs.resolve_implicit_global_asset_job_def().executor_def is dg.multiprocess_executor
    assert build_defs({"MNC_DATA_ROOT": str(tmp_path), "MNC_EXECUTOR": "multiprocess"}
                      ).executor is dg.multiprocess_executor


def test_unknown_executor_is_refused_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bogus") as refused:
        build_defs({"MNC_EXECUTOR": "bogus", "MNC_DATA_ROOT": str(tmp_path)})
    assert "multiprocess" in str(refused.value)
    assert "k8s" in str(refused.value)
