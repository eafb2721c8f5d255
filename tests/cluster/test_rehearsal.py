"""The multi-node rehearsal: the cluster path of docs/cluster.md on a real Ray cluster of three nodes on this machine,
shaped like cluster/*.yaml — a head with 0 CPUs (control plane, job drivers, the Serve controller and proxy, the
session store) and two 2-CPU worker nodes — with one directory standing for the shared filesystem (run_dir,
checkpoints, caches).

Through `ray job submit`, as a user runs them: the demo pipeline succeeds both ways — submitted as one `pipeline` job
with the checkout as its `working_dir` (every stage inside it), and stage by stage; Train workers run on worker nodes;
every job driver's peak memory on the head stays small; the worker node holding the recommender's Train worker is
killed in the middle of training and the job still ends SUCCEEDED from its last checkpoint; the Serve app with two
ingress replicas on different nodes keeps a session across them and survives killing one node. The figures (job
times, recovery times, driver memory) are printed as one table; docs/cluster.md quotes them.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.ray_cluster import LocalCluster, driver_peak_rss, free_port

pytestmark = pytest.mark.rehearsal

DRIVER_RSS_LIMIT_MB = 1200  # a driver imports ray, torch and pyarrow (~0.5-0.9 GB) but loads no model
TINY = [
    "--emotion.epochs",
    "1",
    "--generator.max_steps",
    "2",
    "--generator.eval_samples",
    "4",
    "--generator.max_new_tokens",
    "8",
    "--data.max_conversations",
    "60",
    "--conversation.max_steps",
    "2",
]
STEPS = ("data", "emotions", "reviews", "recommender", "conversation", "generator")


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster()
    c.start_head(num_cpus=0)
    c.add_node(num_cpus=2)
    c.add_node(num_cpus=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The 'shared filesystem': every node of this machine sees it, as every node of a cluster sees its NFS share."""
    return tmp_path_factory.mktemp("shared")


FIGURES: dict[str, object] = {}


def _job(cluster, name: str, run_dir, *extra: str, timeout: float = 900, label: str = "") -> str:
    status, logs, seconds = cluster.run(
        f"ecr_ray.jobs.{name}", "--recipe", "demo", "--run-dir", str(run_dir), *TINY, *extra, timeout=timeout
    )
    assert status == "SUCCEEDED", f"{name}: {status}\n{logs[-4000:]}"
    rss = driver_peak_rss(logs)
    assert rss and max(rss) < DRIVER_RSS_LIMIT_MB, f"{name}: driver peak RSS {rss} MB"
    FIGURES[label or name] = {"seconds": round(seconds, 1), "driver_peak_rss_mb": max(rss)}
    return logs


def _actors(cluster, class_fragment: str) -> list[dict]:
    return [a for a in cluster.state("actors") if class_fragment in (a.get("class_name") or "")]


def test_pipeline_as_one_job(cluster, shared):
    """`ray job submit --working-dir . -- python -m ecr_ray.jobs.pipeline`: every stage inside the one job, on the
    worker nodes, each setting up the job's working_dir on its own disk (ecr_ray/pipeline.py: why one process)."""
    run = shared / "one-job"
    logs = _job(cluster, "pipeline", run, label="pipeline (one job)")
    state = json.loads((run / "pipeline.json").read_text())
    assert list(state) == list(STEPS) and all("seconds" in state[s] for s in STEPS), state
    FIGURES["pipeline (one job)"]["stages_s"] = {s: state[s]["seconds"] for s in STEPS}
    assert "up to date" not in logs


def test_pipeline_stages_as_jobs_with_a_node_lost_mid_training(cluster, shared):
    run = shared / "run"
    head = cluster.node_id(cluster.nodes[0])
    for name in ("data", "train_emotion", "build_reviews"):
        _job(cluster, name, run)

    # The recommender, long enough to lose a node in the middle: 6 epochs, a checkpoint after each.
    args = [
        "ecr_ray.jobs.train_recommender",
        "--recipe",
        "demo",
        "--run-dir",
        str(run),
        *TINY,
        "--recommender.epochs",
        "6",
        "--recommender.batch_size",
        "8",
    ]
    t0 = time.time()
    job = cluster.submit(*args)
    ckpts = run / "recommender" / "full" / "ray"
    deadline = time.time() + 600
    while not list(ckpts.glob("*/checkpoint_*/trainer_state.json")):
        assert cluster.status(job) in ("PENDING", "RUNNING"), cluster.wait(job, 5)[1][-4000:]
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(1)
    workers = _actors(cluster, "RayTrainWorker")
    assert workers and all(w["node_id"] != head for w in workers), "a Train worker ran on the head"
    victim = next(n for n in cluster.nodes[1:] if cluster.node_id(n) == workers[0]["node_id"])
    t_kill = time.time()
    cluster.kill(victim)
    status, logs = cluster.wait(job, 900)
    assert status == "SUCCEEDED", logs[-4000:]
    history = json.loads((run / "recommender" / "full" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 7))  # every epoch once: resumed, not restarted
    assert "resuming at step" in logs
    FIGURES["train_recommender (node killed)"] = {
        "seconds": round(time.time() - t0, 1),
        "driver_peak_rss_mb": max(driver_peak_rss(logs)),
        "after_kill_s": round(time.time() - t_kill, 1),
    }
    cluster.add_node(num_cpus=2)  # the autoscaler's replacement node

    for name in ("evaluate_recommender", "train_conversation", "train_generator", "evaluate_generator"):
        _job(
            cluster,
            name,
            run,
            *(["--recommender.epochs", "6", "--recommender.batch_size", "8"] if name == "evaluate_recommender" else []),
        )
    # The whole pipeline again: every stage is found up to date.
    logs = _job(
        cluster, "pipeline", run, "--recommender.epochs", "6", "--recommender.batch_size", "8", label="pipeline again"
    )
    assert logs.count("up to date") == len(STEPS), logs[-3000:]


def test_serve_keeps_a_session_across_ingress_replicas_and_a_lost_node(cluster, shared):
    run = shared / "run"
    if not (run / "generator" / "adapter").exists():
        pytest.skip("needs the trained run of the pipeline test")
    port = free_port()
    ingress = {"num_replicas": 2, "max_replicas_per_node": 1, "max_ongoing_requests": 256}
    deployments = json.dumps({"ECRIngress": {**ingress, "ray_actor_options": {"num_cpus": 0.1}}})
    job = cluster.submit(
        "ecr_ray.jobs.serve",
        "--recipe",
        "demo",
        "--run-dir",
        str(run),
        *TINY,
        "--serve.port",
        str(port),
        "--serve.deployments",
        deployments,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        cluster.wait_serving(job, url, 600)
        FIGURES["serve: app ready"] = {"seconds": round(time.time() - t0, 1)}
        ingress = _actors(cluster, "ECRIngress")
        assert len(ingress) == 2 and len({a["node_id"] for a in ingress}) == 2, ingress

        created = requests.post(f"{url}/v1/sessions", timeout=60)
        assert created.status_code == 201, created.text
        sid, turns = created.json()["session_id"], []
        for i in range(6):  # requests spread over both replicas: the history grows by 2 turns each time
            turns.append(_ask(url, sid, f"I loved Toy Story, tell me more ({i})")["turns"])
        assert turns == [1, 3, 5, 7, 9, 11], turns

        victim = next(n for n in cluster.nodes[1:] if cluster.node_id(n) == ingress[0]["node_id"])
        t_kill = time.time()
        cluster.kill(victim)
        after, failures = [], 0
        while len(after) < 4 and time.time() - t_kill < 300:
            try:
                after.append(_ask(url, sid, "Something else please")["turns"])
            except (requests.RequestException, AssertionError):
                failures += 1
                time.sleep(1)
        assert after == [13, 15, 17, 19], after  # the history survived the node
        FIGURES["serve: node killed"] = {
            "first_answer_after_s": round(time.time() - t_kill, 1),
            "failed_requests": failures,
        }
    finally:
        cluster.stop_job(job)
        print("\nREHEARSAL FIGURES\n" + json.dumps(FIGURES, indent=2))


def _ask(url: str, sid: str, text: str) -> dict:
    r = requests.post(
        f"{url}/v1/recommend",
        timeout=120,
        json={"dialogue": [{"role": "user", "text": text}], "session_id": sid, "generate": False},
    )
    assert r.status_code == 200, r.text
    return r.json()
