"""Ray's own autoscaler on this machine: a head started with `ray start --head --autoscaling-config=...`, whose
autoscaler launches and terminates worker nodes through Ray's fake multi-node provider (the one Ray's own autoscaler
tests use: ray/autoscaler/_private/fake_multi_node/node_provider.py), each node a raylet of its own here.

The node types are the shipped ones, scaled to this machine (`scaled_node_types`): read from a cluster launcher
config's `available_node_types` (cluster/aws.yaml) or a KubeRay manifest's `workerGroupSpecs` (through
`ecr_ray.cluster`, Ray's own translation), the resource names kept (CPU, GPU, `accelerator_type:*`: the GPUs are
logical here), CPUs times `SCALE`, max_workers capped, the idle timeout shortened, each node's object store capped;
the head with 0 CPUs.

Started like `ray.cluster_utils.AutoscalingCluster.start()` (RAY_FAKE_CLUSTER=1, a short AUTOSCALER_UPDATE_INTERVAL_S)
but without its `ray stop --force`, which ends every Ray instance on the machine: the head has its own ports, temp
dir and token (tests/ray_cluster.py), the provider launches each node with a temp dir of its own under it (as
machines have their own disks: nodes sharing one replace each other's runtime_env packages, ecr_ray/pipeline.py), and
`stop` ends only this cluster's processes (they carry its temp dir or its token).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider

from ecr_ray import cluster as node_types_lib
from ecr_ray import config as config_module
from ecr_ray.config import PROJECT_ROOT, Config
from tests.ray_cluster import LocalCluster, free_port

SCALE = 1 / 8
"""CPUs of a node type (and of every recipe request) times this: aws.yaml's 8-CPU worker.gpu1 has 1 CPU here."""
MAX_WORKERS = 2
"""At most this many nodes of a type (memory: each fake node is a raylet, agents and its workers)."""
IDLE_TIMEOUT_S = 30
OBJECT_STORE_BYTES = 100 * 1024**2
"""Each fake node's object store (the pieces of work exchange small objects; the rest is on the shared dir)."""


def scaled_node_types(path: Path, scale: float = SCALE, max_workers: int = MAX_WORKERS) -> dict[str, dict]:
    """`available_node_types` for the fake provider from a shipped cluster config: same names and resource names,
    CPUs × scale, GPUs and accelerator types as they are (logical), max_workers capped, min_workers kept (capped)."""
    out = {}
    types = node_types_lib.load_node_types(path)
    head = types[0]
    for t in types[1:]:
        res = {k: (v * scale if k == "CPU" else v) for k, v in t.resources.items() if k != "memory"}
        cap = min(t.max_workers, max_workers)
        out[t.name] = {
            "resources": {**res, "object_store_memory": OBJECT_STORE_BYTES},
            "node_config": {},
            "min_workers": 0,
            "max_workers": cap,
        }
    assert head.resources.get("CPU", 0) == 0, f"{path}: the head is expected to have 0 CPUs"
    return out


def resource_fields() -> dict[str, set[str]]:
    """section → its fields of type `Resources` (ecr_ray.config)."""
    out = {}
    for section in dataclasses.fields(Config):
        cls = getattr(config_module, str(section.type), None)
        if dataclasses.is_dataclass(cls):
            out[section.name] = {f.name for f in dataclasses.fields(cls) if str(f.type) == "Resources"}
    return out


CHAT_SECTIONS = ("generator", "conversation")
"""Sections whose `batch_size` is the global batch of a step (a multiple of micro_batch_size × workers)."""


def scaled_requests(recipe: dict, resources: dict[str, set[str]], scale: float = SCALE) -> dict:
    """From a recipe's YAML: every `*_resources` entry with its CPUs × scale, every DeepSpeed config, and the Serve
    deployments with their CPUs × scale (replicas, GPUs and autoscaling_config as written); the chat stages' global
    batch set to their workers' count."""
    out: dict[str, Any] = {}
    for section, fields in recipe.items():
        if not isinstance(fields, dict) or section == "serve":
            continue
        for name, value in fields.items():
            if name in resources.get(section, ()):
                out.setdefault(section, {})[name] = {**value, "cpus": round(value.get("cpus", 1.0) * scale, 4)}
            elif name == "deepspeed":
                out.setdefault(section, {})[name] = copy.deepcopy(value)
    for section in CHAT_SECTIONS:  # their batch is global: one example per Train worker, a micro-batch of 1
        workers = (out.get(section, {}).get("train_resources") or {}).get("workers")
        if workers:
            out[section].update(batch_size=int(workers), micro_batch_size=1)
    deployments = copy.deepcopy((recipe.get("serve") or {}).get("deployments") or {})
    for opts in deployments.values():
        actor = opts.setdefault("ray_actor_options", {})
        actor["num_cpus"] = round(actor.get("num_cpus", 1.0) * scale, 4)
    if deployments:
        out["serve"] = {"deployments": deployments}
    return out


class OwnDirsProvider(FakeMultiNodeProvider):
    """Ray's fake multi-node provider, each node launched on 127.0.0.1 with a temp dir of its own (under the head's,
    `provider.nodes_dir`) instead of the head's: Ray's provider builds each node's `RayParams` itself, so they are
    completed here on their way to `ray._private.node.Node`."""

    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        import ray._private.parameter as parameter

        real = parameter.RayParams
        nodes_dir = Path(self.provider_config["nodes_dir"])

        def params(**kw):
            kw.update(temp_dir=str(nodes_dir / f"n{self._next_node_id}"), node_ip_address="127.0.0.1")
            return real(**kw)

        with self.lock:  # the provider creates nodes under this lock; the swap lasts exactly one creation
            parameter.RayParams = params
            try:
                super()._create_node_with_resources_and_labels(node_config, tags, count, resources, labels)
            finally:
                parameter.RayParams = real


def autoscaling_config(
    node_types: dict[str, dict], gcs: str, nodes_dir: Path, idle_timeout_s: float, upscaling_speed: float = 1.0
) -> dict:
    """The autoscaler's config: Ray's fake_multi_node/example.yaml with these node types and this head."""
    return {
        "cluster_name": "ecr-ray-rehearsal",
        "max_workers": sum(t["max_workers"] for t in node_types.values()),
        "upscaling_speed": upscaling_speed,
        "idle_timeout_minutes": idle_timeout_s / 60,
        "provider": {
            "type": "external",
            "module": "tests.autoscaling_cluster.OwnDirsProvider",
            "gcs_address": gcs,
            "nodes_dir": str(nodes_dir),
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            **node_types,
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


class AutoscalingCluster(LocalCluster):
    """A LocalCluster whose worker nodes Ray's autoscaler launches (fake multi-node provider) on demand."""

    config_path: Path

    def start(self, node_types: dict[str, dict], idle_timeout_s: float = IDLE_TIMEOUT_S, upscaling_speed=1.0) -> None:
        self.gcs = free_port()
        self.config_path = self.temp / "autoscaling.yaml"
        nodes_dir = self.temp / "nodes"
        config = autoscaling_config(node_types, f"127.0.0.1:{self.gcs}", nodes_dir, idle_timeout_s, upscaling_speed)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.start_head(
            num_cpus=0,
            port=self.gcs,
            extra=[f"--autoscaling-config={self.config_path}", f"--object-store-memory={2 * OBJECT_STORE_BYTES}"],
            env={
                "RAY_FAKE_CLUSTER": "1",  # what AutoscalingCluster.start sets: the provider refuses to run without
                "AUTOSCALER_UPDATE_INTERVAL_S": "2",
                "PYTHONPATH": str(PROJECT_ROOT),  # the autoscaler imports the provider above
            },
        )

    # ------------------------------------------------------------------ what the autoscaler says, and a lost node

    def get(self, path: str) -> Any:
        """GET from the dashboard's HTTP API (token auth)."""
        r = requests.get(
            f"{self.env['RAY_API_SERVER_ADDRESS']}{path}",
            headers={"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()

    def nodes_by_type(self) -> dict[str, int]:
        """The autoscaler's own view (`ray status`): worker nodes per type, up or being launched (a `+` suffix)."""
        report = self.get("/api/cluster_status?format=0")["data"]["clusterStatus"].get("autoscalerReport") or {}
        out = {t: n for t, n in (report.get("activeNodes") or {}).items() if t != "ray.head.default"}
        pending = dict(report.get("pendingLaunches") or {})
        for _, node_type, _ in report.get("pendingNodes") or []:
            pending[node_type] = pending.get(node_type, 0) + 1
        out.update({f"{t}+": n for t, n in pending.items()})
        return dict(sorted(out.items()))

    def node_types_by_id(self) -> dict[str, str]:
        """Ray node id → the node type the autoscaler launched it as."""
        report = self.get("/api/cluster_status?format=0")["data"]["clusterStatus"].get("autoscalerReport") or {}
        return dict(report.get("nodeTypeMapping") or {})

    def replicas(self) -> dict[str, int]:
        """RUNNING replicas per Serve deployment, over the applications."""
        apps = self.get("/api/serve/applications/").get("applications") or {}
        out: dict[str, int] = {}
        for app in apps.values():
            for name, d in (app.get("deployments") or {}).items():
                out[name] = sum(r.get("state") == "RUNNING" for r in d.get("replicas") or [])
        return out

    def replica_nodes(self) -> dict[str, list[str]]:
        """The node type each RUNNING replica of each Serve deployment is on (`head` for the head node)."""
        types = self.node_types_by_id()
        apps = self.get("/api/serve/applications/").get("applications") or {}
        return {
            name: sorted(
                types.get(r.get("node_id"), "head") for r in d.get("replicas") or [] if r.get("state") == "RUNNING"
            )
            for app in apps.values()
            for name, d in (app.get("deployments") or {}).items()
        }

    def kill_worker(self, node_id: str) -> None:
        """Hard-kill a launched node (its raylet and everything it started, SIGKILL), as a lost machine; the
        autoscaler finds it gone and launches another if the work still needs one."""
        import psutil

        nodes_dir = str(self.temp / "nodes" / f"n{int(node_id[-5:])}")
        raylets = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info["cmdline"] or [""]
            if cmd[0].endswith("/raylet") and nodes_dir + "/" in " ".join(cmd):
                raylets.append(p)
        assert raylets, f"no raylet under {nodes_dir}"
        procs = [q for r in raylets for q in (r, *r.children(recursive=True))]
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(procs, timeout=10)


class Sampler:
    """In a thread, every `every` seconds: the worker nodes by type (`AutoscalingCluster.nodes_by_type`) and what
    `extra()` returns; `rows` holds (seconds since the start, nodes, extra)."""

    def __init__(self, cluster: AutoscalingCluster, every: float = 3.0, extra: Callable[[], Any] | None = None):
        self.cluster, self.every, self.extra = cluster, every, extra
        self.rows: list[tuple[float, dict[str, int], Any]] = []
        self.t0 = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                row = (self.cluster.nodes_by_type(), self.extra() if self.extra else None)
                self.rows.append((round(time.time() - self.t0, 1), *row))
            except Exception:  # a busy dashboard: the next sample comes
                pass
            self._stop.wait(self.every)

    def changes(self) -> list[tuple[float, dict[str, int], Any]]:
        """The rows where something changed: the counts over time, compactly."""
        out, last = [], None
        for t, nodes, extra in self.rows:
            if (nodes, extra) != last:
                out.append((t, nodes, extra))
                last = (nodes, extra)
        return out

    def seen(self, node_type: str) -> bool:
        return any(n.get(node_type) for _, n, _ in self.rows)
