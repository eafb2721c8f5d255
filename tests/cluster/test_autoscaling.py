"""Autoscaling, rehearsed: the paper recipe's shape on Ray's own autoscaler, nodes launched on demand and given back.

The cluster (tests/autoscaling_cluster.py): a head with 0 CPUs whose autoscaler launches worker nodes of the node
types of cluster/aws.yaml (or of REHEARSAL_NODE_TYPES, e.g. cluster/kuberay/raycluster.yaml), scaled to this machine
(CPUs × 1/8, GPUs and accelerator types as logical resources, at most 2 nodes a type, idle timeout 30 s), through
Ray's fake multi-node provider; no worker node at the start.

The recipe: the demo's models and data with the paper recipe's resource requests, read from paper.yaml (every
`*_resources` with its CPUs × 1/8, workers and GPUs as written; the DeepSpeed configs; the Serve deployments with their
replicas, GPUs and autoscaling_config), `force_cpu: true` (GPUs are held, the CPU computes) and `node_types` = the
autoscaler's config. What is shown, through `ray job submit` as users run it:

- a request no node type can hold fails the job at once, naming the stage, the request and the node types, and no
  node is launched for it;
- from 0 worker nodes the pipeline (one job) SUCCEEDS: the autoscaler launches GPU-typed nodes for the GPU stages and
  none for the CPU stages; the worker node holding a recommender Train worker is killed mid-training, the autoscaler
  launches another and the job still SUCCEEDS; every node is given back after the idle timeout;
- Serve with the paper recipe's deployments: under a load ramp (1 → 24 concurrent clients → 0) the Generator scales
  from min to max replicas, the autoscaler adds GPU nodes for them, both come back down, no request fails.

Timings are compressed for a test: the 30 s idle timeout, and the deployments' upscale/downscale delays (5 s / 20 s,
Serve's defaults 30 s / 600 s); the request timeout is stretched instead (REQUEST_TIMEOUT_S: the nodes share 2
cores). Figures printed as AUTOSCALING FIGURES; docs/cluster.md quotes them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from ecr_ray import cluster as placement
from ecr_ray.config import PROJECT_ROOT, load_config, recipe_path
from ecr_ray.stages import STAGES
from tests.autoscaling_cluster import AutoscalingCluster, Sampler, resource_fields, scaled_node_types, scaled_requests
from tests.ray_cluster import driver_peak_rss, free_port

pytestmark = [pytest.mark.rehearsal, pytest.mark.autoscaling]

# The node types: cluster/aws.yaml's, or another shipped config's (REHEARSAL_NODE_TYPES=cluster/gcp.yaml, ...).
SOURCE = PROJECT_ROOT / os.environ.get("REHEARSAL_NODE_TYPES", "cluster/aws.yaml")
TINY = {
    "data": {"max_conversations": 60},
    "emotion": {"epochs": 1},
    "recommender": {"epochs": 4},
    "conversation": {"max_steps": 2},
    "generator": {"max_steps": 2, "max_length": 128, "eval_samples": 4, "max_new_tokens": 8},  # batch: one a worker
}
FLOAT32_DEEPSPEED = {"bf16": {"enabled": False}}
"""The DeepSpeed configs keep their ZeRO stages but compute in float32 here: this machine's CPU (AVX2, no
avx512_bf16/AMX) multiplies bf16 matrices ~20x slower than float32, and the rehearsal is about where work runs, not
about numerics (DeepSpeed's bf16 with the skeleton's boundary: tests/recommender/test_model.py)."""
SERVE_DELAYS = {"upscale_delay_s": 5, "downscale_delay_s": 20, "look_back_period_s": 10}
REQUEST_TIMEOUT_S = 600.0
"""serve.request_timeout_s here (the paper recipe's is 120 s): every node shares this machine's 2 cores, so a replica
the autoscaler adds adds no compute, and 24 closed-loop clients wait ~24 × a request's CPU time / 2 whatever the
replica count. On a slower day (2026-12-07: `make test` 53 min instead of 31) requests queued at the Generator
during scale-up passed 120 s and were answered 504; the rehearsal is about replicas and nodes following load."""
FIGURES: dict[str, object] = {}


@pytest.fixture(scope="module")
def cluster():
    c = AutoscalingCluster()
    c.start(scaled_node_types(SOURCE), upscaling_speed=yaml.safe_load(SOURCE.read_text()).get("upscaling_speed", 1.0))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The 'shared filesystem': every node of this machine sees it, as every node of a cluster sees its NFS share."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    print("\nAUTOSCALING FIGURES\n" + json.dumps(FIGURES, indent=1))


@pytest.fixture(scope="module")
def recipe(cluster, shared):
    """The paper recipe's shape on the demo's models: a recipe file on the shared directory."""
    paper = yaml.safe_load(recipe_path("paper").read_text())
    shape = scaled_requests(paper, resource_fields())
    for section, fields in TINY.items():
        shape.setdefault(section, {}).update(fields)
    for fields in shape.values():
        if "deepspeed" in fields:
            fields["deepspeed"].update(FLOAT32_DEEPSPEED)
    for opts in shape["serve"]["deployments"].values():
        if "autoscaling_config" in opts:
            opts["autoscaling_config"].update(SERVE_DELAYS)
    shape["serve"].update(
        # One machine: one proxy (on the head), on 127.0.0.1; the autoscaler adds nodes, so no fit check.
        {"host": "127.0.0.1", "port": free_port(), "proxy_location": "HeadOnly", "check_resources": False}
    )
    shape["serve"]["request_timeout_s"] = REQUEST_TIMEOUT_S
    doc = {"extends": "demo", "recipe": "paper-shape", "force_cpu": True, "node_types": str(cluster.config_path)}
    path = shared / "paper-shape.yaml"
    path.write_text(yaml.safe_dump({**doc, **shape}, sort_keys=False))
    FIGURES["node types"] = {n: t["resources"] for n, t in scaled_node_types(SOURCE).items()}
    return path


def _gpu_types() -> set[str]:
    return {n for n, t in scaled_node_types(SOURCE).items() if t["resources"].get("GPU")}


def test_a_request_no_node_type_holds_fails_the_job_at_once(cluster, shared, recipe):
    run = shared / "impossible"
    t0 = time.time()
    with Sampler(cluster, every=2) as s:
        job = cluster.submit(
            "ecr_ray.jobs.pipeline",
            "--recipe",
            str(recipe),
            "--run-dir",
            str(run),
            "--generator.train_resources",
            "{workers: 4, cpus: 0.5, gpus: 16}",
        )
        status, logs = cluster.wait(job, 300)
    seconds = round(time.time() - t0, 1)
    assert status == "FAILED", logs[-3000:]
    err = logs[logs.index("error: ") :] if "error: " in logs else logs[-3000:]
    for part in ("train_generator", "generator.train_resources", "GPU: 16", "worker.gpu4", "worker.gpu8"):
        assert part in err, err
    assert "Traceback" not in logs and not (run / "pipeline.json").exists()  # no stage ran
    assert all(not nodes for _, nodes, _ in s.rows), s.changes()  # no node launched for it
    FIGURES["impossible request"] = {"failed_after_s": seconds, "error": err.strip()[:400]}


def test_pipeline_scales_from_zero_loses_a_node_and_gives_the_nodes_back(cluster, shared, recipe):
    run = shared / "run"
    cfg = load_config(str(recipe), {"run_dir": str(run)})
    assert cluster.nodes_by_type() == {}, "the pipeline must start from 0 worker nodes"
    t0 = time.time()
    with Sampler(cluster) as s:
        job = cluster.submit("ecr_ray.jobs.pipeline", "--recipe", str(recipe), "--run-dir", str(run))
        # Mid-training of the recommender (4 Train workers, one GPU each): kill the node of one of them.
        ckpts = run / "recommender" / "full" / "ray"
        deadline = time.time() + 1800
        while not list(ckpts.glob("*/checkpoint_*/trainer_state.json")):
            assert cluster.status(job) in ("PENDING", "RUNNING"), cluster.wait(job, 5)[1][-4000:]
            assert time.time() < deadline, "no recommender checkpoint in time"
            time.sleep(2)
        workers = [a for a in cluster.state("actors") if "RayTrainWorker" in (a.get("class_name") or "")]
        assert workers, "no Train worker alive after the first checkpoint"
        mapping = cluster.node_types_by_id()
        victim = workers[0]["node_id"]
        assert mapping.get(victim) in _gpu_types(), (mapping.get(victim), mapping)
        t_kill = time.time()
        cluster.kill_worker(victim)
        status, logs = cluster.wait(job, 1800)
        t_done = time.time()
        assert status == "SUCCEEDED", logs[-5000:]
        # Every node goes back once idle.
        while cluster.nodes_by_type() and time.time() - t_done < 300:
            time.sleep(3)
        t_empty = time.time()
    assert cluster.nodes_by_type() == {}, s.changes()[-5:]
    assert "resuming at step" in logs
    history = json.loads((run / "recommender" / "full" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, TINY["recommender"]["epochs"] + 1)) and {
        (h["device"], h["gpus_held"]) for h in history
    } == {("cpu", 1)}

    # Which node types came up during which stage, from the autoscaler's own counts and pipeline.json's times.
    state = json.loads((run / "pipeline.json").read_text())
    stages = []
    for stage in STAGES:  # pipeline.json: local time of the end, seconds taken
        if not stage.wanted(cfg):
            continue
        end = time.mktime(time.strptime(state[stage.name]["finished"], "%Y-%m-%dT%H:%M:%S"))
        start = end - state[stage.name]["seconds"]
        gpu = any(r.bundle.get("GPU") for r in placement.requests(cfg, stage.jobs))
        stages.append((stage.name, start - s.t0, end - s.t0 + 1, gpu))
    launched = _launches(s.rows, stages)
    gpu_types = _gpu_types()
    table = {}
    for name, start, end, gpu in stages:
        active = {t for t_, nodes, _ in s.rows if start <= t_ <= end for t, n in nodes.items() if n and t[-1] != "+"}
        table[name] = {
            "seconds": state[name]["seconds"],
            "asks_gpus": gpu,
            "launched": sorted(launched.get(name, [])),
            "nodes_up": sorted(active),
        }
        if gpu:
            assert active & gpu_types, f"{name}: no GPU-typed node up while it ran: {table[name]}"
        else:
            assert not set(launched.get(name, [])) & gpu_types, f"{name}: a GPU node launched for a CPU stage"
    FIGURES["pipeline (one job, paper shape)"] = {
        "seconds": round(t_done - t0, 1),
        "driver_peak_rss_mb": max(driver_peak_rss(logs)),
        "stages": table,
        "node_killed_after_s": round(t_kill - t0, 1),
        "kill_to_succeeded_s": round(t_done - t_kill, 1),
        "all_nodes_back_after_s": round(t_empty - t_done, 1),
        "node_counts": [[t, n] for t, n, _ in s.changes()],
    }


def _launches(rows, stages) -> dict[str, list[str]]:
    """Per stage, the node types whose count (up or launching) rose while it ran, or before it started (after the
    previous stage ended): what the autoscaler launched for it."""
    out: dict[str, list[str]] = {}
    prev: dict[str, int] = {}
    for t, nodes, _ in rows:
        counts: dict[str, int] = {}
        for k, n in nodes.items():
            counts[k.rstrip("+")] = counts.get(k.rstrip("+"), 0) + n
        for k, n in counts.items():
            if n > prev.get(k, 0):
                owner = next((name for name, _, end, _ in stages if t <= end), stages[-1][0])
                out.setdefault(owner, []).append(k)
        prev = counts
    return out


def test_serve_replicas_and_nodes_follow_a_load_ramp(cluster, shared, recipe):
    run = shared / "run"
    if not (run / "generator" / "manifest.json").exists():
        pytest.skip("needs the trained run of the pipeline test")
    cfg = load_config(str(recipe), {"run_dir": str(run)})
    auto = {d: o["autoscaling_config"] for d, o in cfg.serve.deployments.items() if "autoscaling_config" in o}
    job = cluster.submit("ecr_ray.jobs.serve", "--recipe", str(recipe), "--run-dir", str(run), "--llm")
    url = f"http://127.0.0.1:{cfg.serve.port}"
    gen = auto["Generator"]
    # Enough clients that the Generator's ongoing requests (u_r and u_e: most of a request's time) ask for its
    # max_replicas at its target_ongoing_requests, with half as many again for the time spent elsewhere.
    clients = int(1.5 * gen["max_replicas"] * gen["target_ongoing_requests"])
    ok, failed, phase, latency = {"1": 0, str(clients): 0, "0": 0}, [], {"clients": 1}, []
    stop = threading.Event()

    def client(i: int) -> None:
        while not stop.is_set():
            if i >= phase["clients"]:
                time.sleep(0.5)
                continue
            body = {"dialogue": [{"role": "user", "text": f"I loved Toy Story, anything like it? ({i})"}]}
            t = time.time()
            try:
                r = requests.post(
                    f"{url}/v1/recommend", json={**body, "max_new_tokens": 8}, timeout=REQUEST_TIMEOUT_S + 60
                )
                if r.status_code == 200:
                    ok[str(phase["clients"])] += 1
                    latency.append(time.time() - t)
                else:
                    failed.append((phase["clients"], round(time.time() - t), r.status_code, r.text[:200]))
            except requests.RequestException as e:
                failed.append((phase["clients"], round(time.time() - t), 0, str(e)[:200]))

    try:
        t0 = time.time()
        cluster.wait_serving(job, url, 900)
        ready_s = round(time.time() - t0, 1)
        with Sampler(cluster, extra=lambda: cluster.replicas()) as s, ThreadPoolExecutor(clients) as pool:
            try:  # the clients stop before the pool waits for them, also when an assertion below fails
                for i in range(clients):
                    pool.submit(client, i)
                time.sleep(30)  # 1 client
                phase["clients"], t_up = clients, time.time()
                at_max = None
                while time.time() - t_up < 600:
                    if cluster.replicas().get("Generator", 0) >= gen["max_replicas"]:
                        at_max = at_max or time.time()
                        if time.time() - at_max > 20:
                            break
                    time.sleep(3)
                assert at_max, f"Generator never reached {gen['max_replicas']} replicas: {s.changes()[-3:]}"
                peak_nodes = max((sum(v for k, v in n.items() if not k.endswith("+")) for _, n, _ in s.rows), default=0)
                phase["clients"], t_down = 0, time.time()
                while time.time() - t_down < 600:
                    reps = cluster.replicas()
                    if all(reps.get(d, 0) <= a["min_replicas"] for d, a in auto.items()) and (
                        sum(cluster.nodes_by_type().values()) < peak_nodes
                    ):
                        break
                    time.sleep(3)
                at_min, nodes_after, placed = time.time(), cluster.nodes_by_type(), cluster.replica_nodes()
            finally:
                stop.set()
        peaks = {d: max(r[2].get(d, 0) for r in s.rows if r[2]) for d in cfg.serve.deployments}
        assert peaks["Generator"] == auto["Generator"]["max_replicas"], peaks
        assert all(cluster.replicas().get(d, 0) <= a["min_replicas"] for d, a in auto.items()), cluster.replicas()
        assert not failed, failed[:5]
        FIGURES["serve: load ramp"] = {
            "app_ready_s": ready_s,
            "clients": clients,
            "generator_min_to_max_s": round(at_max - t_up, 1),
            "back_to_min_s": round(at_min - t_down, 1),
            "peak_replicas": peaks,
            "autoscaling_config": auto,
            "worker_nodes_peak": peak_nodes,
            "worker_nodes_after": nodes_after,
            "replicas_on_after": placed,
            "requests_ok": ok,
            "requests_failed": len(failed),
            "latency_s": {"median": round(sorted(latency)[len(latency) // 2], 1), "max": round(max(latency), 1)},
            "counts": [[t, n, r] for t, n, r in s.changes()],
        }
        # No CPU-only replica on a GPU node (they ask for `cpu_node`, which only the CPU node types carry): one there
        # keeps the node up after the GPU replicas it was launched for are gone.
        gpus = {d: (o.get("ray_actor_options") or {}).get("num_gpus") for d, o in cfg.serve.deployments.items()}
        on_gpu = {d: placed[d] for d in placed if not gpus.get(d) and set(placed[d]) & _gpu_types()}
        assert not on_gpu, f"CPU-only replicas on GPU nodes: {on_gpu}"
        # Given back: fewer worker nodes than at the peak once the replicas are at their minimum (the node the
        # autoscaler added for the Generator's extra replicas goes, or another one the scale-down emptied).
        assert sum(nodes_after.values()) < peak_nodes, (
            f"no node given back {round(at_min - t_down)} s after the load ended: {nodes_after}; replicas on {placed}"
        )
    finally:
        stop.set()
        cluster.stop_job(job)
