"""Where steps run: multiprocess locally, one Kubernetes pod per step with dagster-k8s.

`MNC_EXECUTOR=k8s` selects dagster-k8s's `k8s_job_executor`, imported only then (the
optional `k8s` dependency group). GPU steps carry `GPU_OP_TAGS`, which the Kubernetes
executor turns into an `nvidia.com/gpu` limit on their pod; CPU steps request none.
Locally the tag is inert and the `gpu` concurrency pool does the scheduling.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

GPU_POOL = "gpu"
K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_OP_TAGS = {
    K8S_CONFIG_TAG: {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}
}
EXECUTORS = ("multiprocess", "k8s")


def executor_mode(env: Mapping[str, str] | None = None) -> str:
    """`MNC_EXECUTOR` (default multiprocess); anything else is an error naming the choices."""
    env = os.environ if env is None else env
    mode = env.get("MNC_EXECUTOR", "multiprocess") or "multiprocess"
    if mode not in EXECUTORS:
        raise ValueError(f"MNC_EXECUTOR={mode!r} is not one of {EXECUTORS}")
    return mode


def platform_executor(mode: str) -> dg.ExecutorDefinition:
    """The executor for `mode` (`executor_mode()`)."""
    if mode == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return dg.multiprocess_executor
