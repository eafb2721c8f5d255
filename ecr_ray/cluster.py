"""The node types a cluster can have, and whether a recipe's Ray work fits them.

A job's Ray work comes in pieces: a Ray Train worker, a Ray Data actor, a Ray task, a Serve replica, each reserving
CPUs and GPUs (a section's `Resources`, a deployment's `ray_actor_options`). On an autoscaling cluster a piece that
no node type can hold never runs: the autoscaler only logs that no node type fits, and the job waits forever. `check`
looks first: every piece a job will ask for must fit some node type, and as many pieces as the job runs at once must
fit the node types at their `max_workers`; otherwise the job fails at once with one error naming the job, the recipe
field, the request and the node types.

The node types come from the cluster's own config, in the form its autoscaler reads it: a Ray cluster launcher YAML
(`available_node_types`) or a KubeRay RayCluster / RayJob / RayService (`headGroupSpec` + `workerGroupSpecs`,
translated by Ray's own KubeRay code into the same form). `Config.node_types` names the file; without it a `ray up`
head's `~/ray_bootstrap_config.yaml` is read, else the nodes of a Ray instance the job started itself.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import runtime
from .config import Config, ConfigError, Resources
from .serve_spec import APP_NAME, LLM_NAME, reservations
from .stages import STAGES

log = logging.getLogger(__name__)

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")
"""Where `ray up` puts the autoscaler's config on the head node (the job drivers' node)."""

OTHER_JOB_RESOURCES: dict[str, tuple[str, ...]] = {
    "label_emotions": ("emotion.llm_resources",),
    "plan": (),
    "specs": (),
    "tune": (
        "recommender.train_resources",
        "recommender.encode_resources",
        "generator.train_resources",
        "generator.eval_resources",
        "emotion.label_resources",
    ),
    "serve": ("serve.deployments",),
}
"""The recipe fields whose `Resources` the jobs outside the pipeline's stages reserve (`serve.deployments`: every
replica of the applications served)."""
JOB_RESOURCES: dict[str, tuple[str, ...]] = {
    **{job: tuple(stage.resources.get(job, ())) for stage in STAGES for job in stage.jobs},
    **OTHER_JOB_RESOURCES,
}
"""Every job's: the stages' jobs as each stage declares them (`Stage.resources`), then the others. Jobs without Ray
work map to ()."""


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict[str, float]
    """Ray resources of one node: CPU, GPU, `accelerator_type:<name>`, custom ones."""
    max_workers: int
    """Nodes of this type the cluster may hold (the head: 1)."""

    def holds(self, bundle: dict[str, float]) -> int:
        """How many `bundle`s fit one node of this type."""
        need = {k: v for k, v in bundle.items() if v > 0}
        if not need:
            return 10**6
        return min(math.floor(self.resources.get(k, 0.0) / v + 1e-9) for k, v in need.items())

    def __str__(self) -> str:
        return f"{self.name} {_fmt(self.resources)} (max {self.max_workers})"


@dataclass(frozen=True)
class Request:
    """`count` pieces of `bundle` at once, for `job`, from the recipe field `field`."""

    job: str
    field: str
    bundle: dict[str, float]
    count: int
    per_node: int = 0
    """At most this many pieces on one node (Serve's max_replicas_per_node); 0 = no limit."""

    def __str__(self) -> str:
        return f"{self.count} × {_fmt(self.bundle)}" + (f", at most {self.per_node} per node" if self.per_node else "")


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in resources.items()) + "}"


# ----------------------------------------------------------------------------- node types of a cluster config


def node_types_of(doc: dict[str, Any], where: str = "cluster config") -> list[NodeType]:
    """The node types of a launcher config or a KubeRay RayCluster / RayJob / RayService manifest."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a Ray cluster launcher or KubeRay YAML mapping")
    spec = _kuberay_cluster_spec(doc)
    if spec is not None:
        # Ray's own translation of a RayCluster spec into autoscaler node types (what KubeRay's autoscaler reads):
        # ray/autoscaler/_private/kuberay/autoscaling_config.py.
        from ray.autoscaler._private.kuberay.autoscaling_config import (
            _generate_available_node_types_from_ray_cr_spec,
        )

        types = _generate_available_node_types_from_ray_cr_spec(spec)
        head = next(iter(types))  # the head group comes first
    elif "available_node_types" in doc:
        types, head = doc["available_node_types"], doc.get("head_node_type")
    else:
        raise ConfigError(
            f"{where}: no node types: expected `available_node_types` (Ray cluster launcher) or a KubeRay "
            f"RayCluster / RayJob / RayService"
        )
    out = []
    for name, t in types.items():
        res = {k: float(v) for k, v in (t.get("resources") or {}).items() if k != "object_store_memory"}
        out.append(NodeType(str(name), res, 1 if name == head else int(t.get("max_workers", 0))))
    return out


def _kuberay_cluster_spec(doc: dict[str, Any]) -> dict | None:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "RayCluster":
        return spec
    if kind == "RayJob":
        return spec.get("rayClusterSpec")
    if kind == "RayService":
        return spec.get("rayClusterConfig")
    return None


def load_node_types(path: str | Path) -> list[NodeType]:
    p = Path(path).expanduser()
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"node_types: {p} not found (a Ray cluster launcher or KubeRay YAML)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"node_types: {p}: invalid YAML: {e}") from None
    return node_types_of(doc, str(p))


def node_types_for(cfg: Config) -> tuple[list[NodeType], str] | None:
    """The node types the jobs of `cfg` may run on and where they come from, or None when unknown."""
    if cfg.node_types:
        return load_node_types(cfg.node_types), cfg.node_types
    if BOOTSTRAP_CONFIG.expanduser().exists():
        return load_node_types(BOOTSTRAP_CONFIG), str(BOOTSTRAP_CONFIG)
    if runtime.started_local():  # no autoscaler: the nodes there are are all there will be
        import ray

        nodes = [n for n in ray.nodes() if n["Alive"]]
        types = [
            NodeType(f"node {n['NodeID'][:8]}", {k: float(v) for k, v in n["Resources"].items()}, 1) for n in nodes
        ]
        return types, "this Ray instance"
    return None


# ----------------------------------------------------------------------------- what the jobs ask for


def requests(cfg: Config, jobs: list[str] | tuple[str, ...], apps: list[str] | None = None) -> list[Request]:
    """The pieces of Ray work `jobs` ask for; `apps`: the Serve applications of `serve` (default: all)."""
    out: list[Request] = []
    for job in jobs:
        for name in JOB_RESOURCES.get(job, ()):
            if name == "serve.deployments":
                out += _serve_requests(cfg, job, apps or [APP_NAME, LLM_NAME])
                continue
            section, field = name.split(".")
            r: Resources = getattr(getattr(cfg, section), field)
            bundle = {"CPU": r.cpus, **({"GPU": r.gpus} if r.gpus else {})}
            out.append(Request(job, name, bundle, r.workers))
    return out


def _serve_requests(cfg: Config, job: str, apps: list[str]) -> list[Request]:
    return [Request(job, r.field, r.bundle, r.replicas, r.max_per_node) for r in reservations(cfg, apps)]


_BUILTIN = ("CPU", "GPU", "memory")


def problems(reqs: list[Request], types: list[NodeType], source: str) -> list[str]:
    """Why some of `reqs` cannot be placed on `types` (of `source`); [] when all can."""
    out = []
    listing = "; ".join(map(str, types))
    for r in reqs:
        fits = [(t, t.holds(r.bundle)) for t in types]
        fits = [(t, min(n, r.per_node) if r.per_node else n) for t, n in fits if n > 0 and t.max_workers > 0]
        # a custom resource (e.g. the paper recipe's `cpu_node`) that no node type carries at all: say which
        missing = [
            k for k in r.bundle if k not in _BUILTIN and r.bundle[k] > 0 and not any(k in t.resources for t in types)
        ]
        if missing:
            out.append(
                f"{r.job}: {r.field} asks {_fmt(r.bundle)}, but no node type of {source} carries "
                f"{', '.join(f'`{k}`' for k in missing)}: {listing}. Give the node types meant for it that resource "
                f"(`resources:` in a launcher config or a KubeRay group, `ray start --resources`), or drop it from "
                f"the request"
            )
            continue
        if not fits:
            out.append(
                f"{r.job}: {r.field} asks {_fmt(r.bundle)} for each of its {r.count}, but no node type of {source} "
                f"has that much: {listing}. Lower the request or add such a node type"
            )
            continue
        most = sum(n * t.max_workers for t, n in fits)
        if most < r.count:
            out.append(
                f"{r.job}: {r.field} asks {r} at once, but the node types of {source} that can hold one "
                f"({', '.join(t.name for t, _ in fits)}) hold at most {most} at their max_workers: {listing}"
            )
    return out


def check(cfg: Config, jobs: list[str] | tuple[str, ...], apps: list[str] | None = None) -> None:
    """Fail (ConfigError) before any work when a piece of `jobs`' Ray work cannot be placed on the cluster's node
    types; a no-op when the node types are unknown (a cluster joined without `node_types`). Ray must be initialised
    when the node types come from the running instance."""
    reqs = requests(cfg, jobs, apps)
    if not reqs:
        return
    found = node_types_for(cfg)
    if found is None:
        log.info("resource requests not checked: this cluster's node types are unknown (set node_types)")
        return
    bad = problems(reqs, *found)
    if bad:
        raise ConfigError("; ".join(bad))
