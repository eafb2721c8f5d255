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
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)


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
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    log.debug("ray: %s", "joined " + address if address else "local instance")
    try:
        yield
    finally:
        ray.shutdown()


def run_task(fn: Callable, resources, *args, **kwargs) -> Any:
    """`fn(*args, **kwargs)` as one Ray task reserving `resources` (a config `Resources`), its result returned.
    The task sets torch's thread count to the CPUs it reserved."""
    import ray

    return ray.get(ray.remote(_with_threads).options(**resources.options()).remote(
        fn, resources.threads, *args, **kwargs))


def _with_threads(fn: Callable, threads: int, *args, **kwargs):
    import torch

    torch.set_num_threads(threads)
    return fn(*args, **kwargs)
