"""A real multi-node Ray cluster on this machine, the way `ray start` builds one on many: a head (its own ports, token
auth, the dashboard / job API on 127.0.0.1) and worker nodes, each a `ray start --address` with ports of its own.

Killing a node kills its raylet's process group (the raylet, its workers and agents), as a lost machine would.
Stopping the cluster ends only the processes that carry its temp dir or its nodes' ports: `ray stop` would end every
Ray process on the machine, other clusters included. Jobs are submitted with `ray job submit`, as users do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ecr_ray.config import PROJECT_ROOT

BIN = Path(sys.executable).parent
HEAD_START_ATTEMPTS = 3
"""`ray start --head` tries before a cluster fixture fails (see LocalCluster.start_head)."""
_AGENT_PORTS = (
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "metrics-export-port",
    "runtime-env-agent-port",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    name: str
    manager_port: int
    cpus: float


@dataclass
class LocalCluster:
    temp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ecr-ray-", dir="/tmp")))
    nodes: list[Node] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    gcs: int = 0
    dashboard: int = 0

    def start_head(
        self, num_cpus: float = 0, port: int = 0, extra: list[str] | tuple[str, ...] = (), env: dict | None = None
    ) -> None:
        """The head; its CPUs (0 = control plane and job drivers only, as in cluster/*.yaml); `extra` arguments of
        `ray start` and `env` for its processes (an autoscaler's config, ...)."""
        self.gcs, self.dashboard = port or free_port(), free_port()
        # Token auth, as Ray >= 2.59 clusters run it: a fresh token for this cluster, given to server and clients.
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }  # `python` = this venv's
        self.env.pop("RAY_AUTH_TOKEN_PATH", None)
        self.env.pop("RAY_ADDRESS", None)
        # Ray's own processes that ask the state API without an address (Ray Train's PlacementGroupCleaner) find it
        # here: with several Ray instances on one host, "auto" finds them all and fails.
        self.env["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{self.dashboard}"
        self.env.update(env or {})
        for attempt in range(HEAD_START_ATTEMPTS):
            manager = free_port()
            try:
                self._ray_start(
                    [
                        "--head",
                        f"--port={self.gcs}",
                        "--dashboard-host=127.0.0.1",
                        f"--dashboard-port={self.dashboard}",
                        f"--ray-client-server-port={free_port()}",
                        f"--temp-dir={self.temp}",
                        "--disable-usage-stats",
                        *extra,
                    ],
                    num_cpus,
                    manager,
                )
                break
            except RuntimeError:
                # On a busy machine the head's GCS can miss `ray start`'s deadline ("Failed to get node info ...
                # Deadline Exceeded"); what it left is stopped, and a fresh head gets fresh ports.
                if attempt + 1 == HEAD_START_ATTEMPTS:
                    raise
                if not port:
                    self.gcs = free_port()
                self.dashboard = free_port()
                self.env["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{self.dashboard}"
        self.nodes.append(Node("head", manager, num_cpus))

    def add_node(self, num_cpus: float) -> Node:
        manager = free_port()
        lo = 20000 + 1000 * len(self.nodes) + (os.getpid() % 20) * 100  # a worker-port range of its own
        # Its own temp dir, as another machine has its own disk: nodes sharing one would share (and garbage-collect)
        # each other's runtime_env packages.
        self._ray_start(
            [
                f"--address=127.0.0.1:{self.gcs}",
                f"--min-worker-port={lo}",
                f"--max-worker-port={lo + 99}",
                f"--temp-dir={self.temp / f'n{len(self.nodes)}'}",
            ],
            num_cpus,
            manager,
        )
        node = Node(f"worker{len(self.nodes)}", manager, num_cpus)
        self.nodes.append(node)
        return node

    def _ray_start(self, args: list[str], num_cpus: float, manager: int) -> None:
        ports = [f"--{p}={free_port()}" for p in _AGENT_PORTS]
        cmd = [
            BIN / "ray",
            "start",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={num_cpus:g}",
            f"--node-manager-port={manager}",
            f"--object-manager-port={free_port()}",
            *ports,
            *args,
        ]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            self.stop()  # what this `ray start` left running (a busy machine can time a half-started node out)
            raise RuntimeError(f"ray start failed: {done.stderr[-2000:]}")

    def raylet(self, node: Node):
        import psutil

        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "raylet" in cmd and f"--node_manager_port={node.manager_port}" in cmd:
                return p
        raise LookupError(f"no raylet for {node.name}")

    def node_id(self, node: Node) -> str:
        """The Ray node id of `node` (by its node-manager port)."""
        for n in self.state("nodes"):
            if n["alive"] and n["node_manager_port"] == node.manager_port:
                return n["node_id"]
        raise LookupError(f"{node.name} is not in the cluster's node list")

    def kill(self, node: Node) -> None:
        """Hard-kill a node, as a lost machine: its raylet and everything the raylet started (its workers, its
        dashboard and runtime-env agents), with SIGKILL. (Nodes on one machine may share a process group, so the
        raylet's process tree is what marks a node here.)"""
        import psutil

        raylet = self.raylet(node)
        procs = [raylet, *raylet.children(recursive=True)]
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(procs, timeout=10)
        self.nodes.remove(node)

    def stop(self) -> None:
        """End every process of this cluster, whatever its title: those carrying its temp dir or its token, and
        everything they started."""
        import psutil

        token = self.env.get("RAY_AUTH_TOKEN")
        procs: dict[int, psutil.Process] = {}
        for p in psutil.process_iter(["cmdline"]):
            try:
                if str(self.temp) in " ".join(p.info["cmdline"] or []) or (
                    token and p.environ().get("RAY_AUTH_TOKEN") == token
                ):
                    procs.update({q.pid: q for q in (p, *p.children(recursive=True))})
            except psutil.Error:
                pass
        for p in procs.values():
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(list(procs.values()), timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        shutil.rmtree(self.temp, ignore_errors=True)

    # ------------------------------------------------------------------ Serve

    @contextlib.contextmanager
    def serve_run(self, config: Path, ready, timeout: float = 420, cwd: Path = PROJECT_ROOT):
        """`serve run CONFIG` on this cluster, as users run a written Serve config, until `ready()` is true; at the end
        SIGINT, on which `serve run` tears its applications down."""
        import requests

        proc = subprocess.Popen(
            [BIN / "serve", "run", "--address", f"127.0.0.1:{self.gcs}", str(config)],
            cwd=cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.time() + timeout
            while True:
                assert proc.poll() is None, f"serve run exited {proc.returncode}: {proc.stdout.read()[-3000:]}"
                try:
                    if ready():
                        break
                except requests.RequestException:  # not listening yet, or the app still coming up behind the proxy
                    pass
                assert time.time() < deadline, f"{config} did not come up in {timeout:.0f} s"
                time.sleep(1)
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def serve_status(self) -> dict:
        """`serve status` of this cluster, parsed."""
        out = subprocess.run(
            [BIN / "serve", "status", "--address", self.env["RAY_API_SERVER_ADDRESS"]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"serve status failed: {out.stderr[-2000:]}")
        import yaml

        return yaml.safe_load(out.stdout)

    # ------------------------------------------------------------------ jobs and state, through the job API

    def submit(self, *job_args: str, runtime_env: str = "cluster/runtime_env.yaml") -> str:
        """`ray job submit --no-wait` of `python -m <job_args>` from the repo root; the submission id."""
        cmd = [
            BIN / "ray",
            "job",
            "submit",
            "--no-wait",
            "--working-dir",
            ".",
            "--runtime-env",
            runtime_env,
            "--",
            "python",
            "-m",
            *job_args,
        ]
        for _ in range(90):  # right after `ray start` the job agent may not be up yet (slow on a busy machine)
            out = subprocess.run(cmd, cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True)
            if "No available agent" not in out.stderr:
                break
            time.sleep(2)
        if out.returncode != 0:
            raise RuntimeError(out.stdout[-2000:] + out.stderr[-3000:])
        return re.search(r"raysubmit_[A-Za-z0-9]+", out.stdout + out.stderr).group(0)

    def wait(self, job_id: str, timeout: float = 900) -> tuple[str, str]:
        """Wait for a terminal status; (status, logs)."""
        return tuple(self._probe("wait", job_id, str(timeout)).split("\n", 1))  # type: ignore[return-value]

    def status(self, job_id: str) -> str:
        return self._probe("status", job_id).strip()

    def run(self, *job_args: str, timeout: float = 900) -> tuple[str, str, float]:
        """Submit and wait: (status, logs, seconds)."""
        t0 = time.time()
        status, logs = self.wait(self.submit(*job_args), timeout)
        return status, logs, time.time() - t0

    def wait_serving(self, job_id: str, url: str, timeout: float) -> None:
        """Wait until the Serve app that job `job_id` runs answers `url`/healthz (the job failing ends the wait)."""
        import requests

        deadline = time.time() + timeout
        while True:
            assert self.status(job_id) in ("PENDING", "RUNNING"), self.wait(job_id, 5)[1][-4000:]
            try:
                if requests.get(f"{url}/healthz", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            assert time.time() < deadline, "the Serve app did not come up"
            time.sleep(2)

    def stop_job(self, job_id: str) -> None:
        self._probe("stop", job_id)

    def state(self, kind: str) -> list[dict]:
        """`nodes` or `actors` (alive ones) from the state API."""
        return json.loads(self._probe(kind))

    def _probe(self, what: str, *args: str) -> str:
        # A fresh process with this cluster's token (the test process may hold another cluster's).
        address = f"127.0.0.1:{self.gcs}" if what == "nodes" else self.env["RAY_API_SERVER_ADDRESS"]
        res = subprocess.run(
            [sys.executable, "-c", _PROBE, what, address, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=float(args[1]) + 60 if what == "wait" else 120,
        )
        if res.returncode != 0:
            raise RuntimeError(f"probe {what} failed: {res.stderr[-2000:]}")
        return res.stdout


_PROBE = r"""
import json, sys, time
what, address, *args = sys.argv[1:]
if what == "nodes":
    import ray
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    print(json.dumps([{"node_id": n["NodeID"], "node_manager_port": n["NodeManagerPort"], "alive": n["Alive"]}
                      for n in ray.nodes()]))
    sys.exit()
if what == "actors":
    from dataclasses import asdict
    from ray.util.state import list_actors
    rows = list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=10000)
    print(json.dumps([asdict(a) for a in rows], default=str))
    sys.exit()
from ray.job_submission import JobSubmissionClient
c = JobSubmissionClient(address)
job = args[0]
if what == "status":
    print(c.get_job_status(job).value)
elif what == "stop":
    c.stop_job(job)
else:
    deadline = time.time() + float(args[1])
    while (s := c.get_job_status(job).value) not in ("SUCCEEDED", "FAILED", "STOPPED") and time.time() < deadline:
        time.sleep(2)
    print(s)
    print(c.get_job_logs(job))
"""


def driver_peak_rss(logs: str) -> list[float]:
    """Every `driver peak RSS <MB> MB` line a job's drivers printed (ecr_ray.jobs.cli.run_job)."""
    return [float(m) for m in re.findall(r"driver peak RSS ([\d.]+) MB", logs)]
