"""Deploying the two Serve applications of a recipe — `ecr` (the ECR service at /) and `llm` (the base model's
OpenAI endpoint at /llm) — and checking first that they fit the cluster.

`serve_config` writes the `serve build`-format file (`ecr-ray serve --write-config`): both applications, their typed
`args`, every deployment's options from the recipe. `check_fits` sums what the deployments reserve at their largest
scale (max replicas × CPUs/GPUs each) and fails naming the deployments and the shortfall when the cluster cannot
hold them, instead of leaving a replica waiting forever to be scheduled. `ecr-ray serve` checks before deploying; the
application builders check too (for `serve run` / `serve deploy` of the written file), for the applications the
file holds (`args.apps`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ecr_ray.config import Config, ConfigError, load_config
from ecr_ray.serve_spec import APP_NAME, LLM_NAME, demand, deployments


def shortfall(need: dict[str, tuple[int, float, float]], cpus: float, gpus: float) -> str | None:
    """Why `need` does not fit a cluster of `cpus` CPUs and `gpus` GPUs, or None when it does."""
    total_cpu = sum(r * c for r, c, _ in need.values())
    total_gpu = sum(r * g for r, _, g in need.values())
    if total_cpu <= cpus + 1e-9 and total_gpu <= gpus + 1e-9:
        return None
    parts = ", ".join(f"{n} {r}×{c:g} CPU" + (f" + {g:g} GPU" if g else "") for n, (r, c, g) in need.items())
    short = []
    if total_cpu > cpus + 1e-9:
        short.append(f"{total_cpu - cpus:.2f} CPU")
    if total_gpu > gpus + 1e-9:
        short.append(f"{total_gpu - gpus:g} GPU")
    return (
        f"the Serve deployments need {total_cpu:.2f} CPUs and {total_gpu:g} GPUs at their largest scale ({parts}) "
        f"but the cluster has {cpus:g} CPUs and {gpus:g} GPUs: short by {' and '.join(short)}. Lower "
        f"serve.deployments.<name>.ray_actor_options or their replicas in the recipe (or set "
        f"serve.check_resources false on a cluster that adds nodes on demand)"
    )


def check_fits(cfg: Config, apps: list[str]) -> None:
    """Fail (ConfigError) when the applications cannot fit this Ray cluster; Ray must be initialised."""
    if not cfg.serve.check_resources:
        return
    import ray

    total = ray.cluster_resources()
    problem = shortfall(demand(cfg, apps), total.get("CPU", 0.0), total.get("GPU", 0.0))
    if problem:
        raise ConfigError(problem)


def overrides(cfg: Config, recipe: str) -> dict[str, Any]:
    """The fields where `cfg` differs from recipe `recipe` as it loads (`--section.field` overrides on the command
    line), dotted; run_dir and a data directory of its own are the file's own args."""
    base, mine = load_config(recipe).to_dict(), cfg.to_dict()
    out: dict[str, Any] = {}
    for key, value in mine.items():
        if key in ("run_dir", "recipe"):
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items() if v != base[key].get(k)})
        elif value != base[key]:
            out[key] = value
    if cfg.data.data_dir != "sample":  # written as args.data_dir, resolved
        out.pop("data.data_dir", None)
    return out


def serve_config(cfg: Config, recipe: str) -> dict:
    """The `serve build`-format config of both applications. `args` rebuild exactly `cfg` (recipe, run and data
    directories, any command-line override), and every application lists the deployments it really holds."""
    s, own = cfg.serve, load_config(recipe)
    args: dict[str, Any] = {"recipe": recipe}
    # Directories as absolute paths, but for a recipe's own relative ones: left to the recipe, they resolve where the
    # application is built (`serve run` from the checkout), so the file is the same on every machine.
    if cfg.run_dir != own.run_dir or Path(cfg.run_dir).expanduser().is_absolute():
        args["run_dir"] = str(cfg.run_path)
    args["apps"] = [APP_NAME, LLM_NAME]
    if cfg.data.data_dir != "sample" and (
        cfg.data.data_dir != own.data.data_dir or Path(cfg.data.data_dir).expanduser().is_absolute()
    ):
        args["data_dir"] = str(cfg.data.resolved_dir())
    if over := overrides(cfg, recipe):
        args["overrides"] = over
    apps = []
    for name, path, prefix in ((APP_NAME, "ecr_ray.serve.app:app", "/"), (LLM_NAME, "ecr_ray.serve.llm:app", "/llm")):
        # Ray Serve LLM sizes its own deployment (generator.vllm): named here, with no options to override
        listed = [
            {"name": d, **s.deployment_options(d)} if d in s.deployments else {"name": d}
            for d in deployments(cfg, name)
        ]
        apps.append(
            {
                "name": name,
                "route_prefix": prefix,
                "import_path": path,
                "args": copy.deepcopy(args),
                **({"deployments": listed} if listed else {}),
            }
        )
    return {"proxy_location": s.proxy_location, "http_options": {"host": s.host, "port": s.port}, "applications": apps}


def config_text(cfg: Config, recipe: str, shown: str) -> str:
    """The Serve config file of `cfg` as `ecr-ray serve --write-config <shown>` writes it."""
    head = (
        f"# Ray Serve config for recipe {recipe!r}, written by `ecr-ray serve --recipe {recipe} --write-config "
        f"{shown}`.\n# `serve run {shown}` (or `serve deploy` to a running cluster). Deployment options come from "
        "the recipe's\n# serve.deployments: edit the recipe and regenerate.\n"
    )
    return head + yaml.safe_dump(serve_config(cfg, recipe), sort_keys=False)


def write_config(cfg: Config, recipe: str, path: Path, shown: str | None = None) -> None:
    path.write_text(config_text(cfg, recipe, shown or str(path)))
