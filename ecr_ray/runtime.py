"""Ray for the jobs: join a cluster only when told to, and run a function as a Ray task with a stage's resources.

Every job joins Ray the same way (`connect`): the cluster named by `--address` or `RAY_ADDRESS` (which `ray job
submit` sets for the job's driver), else a fresh local instance — never whatever cluster `ray start` last left on
the machine. A job's driver only orchestrates: model work (encoding, generation, evaluation) goes to Ray tasks,
actors or Train workers with the recipe's `Resources` (`run_task`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from .config import ConfigError

log = logging.getLogger(__name__)
_started_local = False  # whether `connect` started the Ray instance (then its nodes are all there will be)


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None, dashboard: bool = True) -> Iterator[None]:
    """Ray for the duration of a job. `address` (or RAY_ADDRESS) joins that cluster; otherwise a local instance is
    started (with `num_cpus`, default all cores) and shut down at the end. Already initialised: used as it is."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Train V2 logs controller-state errors without the dashboard (docs/stack notes); worker logs reach the driver.
    kwargs: dict[str, Any] = {"include_dashboard": dashboard, "log_to_driver": True}
    global _started_local
    if address:
        ray.init(address=address, **kwargs)
        pin_ray_data_stats_actor()
    else:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    _started_local = not address
    log.debug("ray: %s", "joined " + address if address else "local instance")
    try:
        yield
    finally:
        ray.shutdown()
        _started_local = False


def pin_ray_data_stats_actor() -> None:
    """Create Ray Data's stats actor from this driver, so that it lives on the driver's node (the head).

    Ray Data keeps one detached `_StatsActor` per cluster, pinned to the node of the first process that runs a
    Dataset (Ray 2.60: ray/data/_internal/stats.py `get_or_create_stats_actor`). The stages run their Datasets in Ray
    tasks and Train workers, on worker nodes: the actor would stay on one of them for the cluster's lifetime and the
    autoscaler could never give that node back (the autoscaling rehearsal's GPU node stayed up, idle, holding only
    it). It needs no CPU, so the 0-CPU head holds it."""
    from ray.data._internal.stats import get_or_create_stats_actor

    get_or_create_stats_actor()


def started_local() -> bool:
    """Whether `connect` started the Ray instance this process uses (then its nodes are all there will be)."""
    return _started_local


def run_task(fn: Callable, resources, *args, **kwargs) -> Any:
    """`fn(*args, **kwargs)` as one Ray task reserving `resources` (a config `Resources`), its result returned.
    The task sets torch's thread count to the CPUs it reserved. It is scheduled on its own, not inside the caller's
    placement group: a Tune trial's group holds only the trial driver's sliver of a CPU."""
    import ray

    task = ray.remote(_in_task).options(scheduling_strategy="DEFAULT", **resources.options())
    level = logging.getLogger("ecr_ray").getEffectiveLevel()
    return ray.get(task.remote(fn, resources.threads, level, *args, **kwargs))


def _in_task(fn: Callable, threads: int, log_level: int, *args, **kwargs):
    """The task's side: the driver's log level (so progress lines reach the job's log) and torch's threads."""
    import torch

    logging.basicConfig(level=log_level, format="%(message)s")
    torch.set_num_threads(threads)
    return fn(*args, **kwargs)


def check_fits(needs: dict[str, object], beside: float = 0.0, what: str = "") -> None:
    """Fail early, naming the field, when no node of the cluster can ever run one of `needs` (field name →
    `Resources`) while `beside` CPUs are held elsewhere (e.g. a Tune trial's driver) — instead of waiting forever.
    On a cluster this job joined, nodes may still be added by an autoscaler: there it only warns."""
    import ray

    nodes = [(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in ray.nodes() if n["Alive"]]
    for name, r in needs.items():
        ok = any(
            cpu >= r.cpus
            and gpu >= r.gpus
            and (cpu >= r.cpus + beside or any(c >= beside for j, (c, _) in enumerate(nodes) if j != i))
            for i, (cpu, gpu) in enumerate(nodes)
        )
        if ok:
            continue
        most = max((c for c, _ in nodes), default=0.0)
        msg = (
            f"{what}{name} asks {r.cpus:g} CPUs and {r.gpus:g} GPUs per worker, but no node of this cluster has "
            f"that much free beside the {beside:g} CPU held by the caller (largest node: {most:g} CPUs): lower "
            f"it, e.g. --{name} '{{cpus: {max(most - beside, 0.1):.2f}}}'"
        )
        if _started_local:
            raise ConfigError(msg)
        log.warning("%s (waiting for the autoscaler)", msg)
