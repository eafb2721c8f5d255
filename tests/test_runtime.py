"""ecr_ray.runtime on a real two-node cluster (tests/ray_cluster.py): a head with 0 CPUs and one 2-CPU worker node."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.ray_cluster import LocalCluster

# A job's driver: joins the cluster, runs a Dataset in a Ray task (as the stages do, on a worker node), then says
# on which node Ray Data's detached stats actor lives and which node is the head.
_JOB = r"""
import json, sys
import ray
from ray.util.state import list_actors
from ecr_ray.runtime import connect

def build():
    import ray.data
    return ray.data.range(8).map_batches(lambda b: b).count()

with connect(sys.argv[1]):
    assert ray.get(ray.remote(num_cpus=1)(build).remote()) == 8
    stats = list_actors(filters=[("class_name", "=", "_StatsActor")])
    print(json.dumps({"stats": [a.node_id for a in stats], "driver": ray.get_runtime_context().get_node_id()}))
"""


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster()
    c.start_head(num_cpus=0)
    c.add_node(num_cpus=2)  # the task below holds one, its Dataset runs on the other
    yield c
    c.stop()


def test_ray_data_stats_actor_stays_on_the_drivers_node(cluster):
    """Ray Data's detached stats actor goes where the first Dataset runs; a job's Datasets run on worker nodes, so
    without `connect` creating it first it would pin a worker node for good (the autoscaler never gives it back)."""
    done = subprocess.run(
        [sys.executable, "-c", _JOB, f"127.0.0.1:{cluster.gcs}"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    head = cluster.node_id(cluster.nodes[0])
    assert out["driver"] == head
    assert out["stats"] == [head], out
