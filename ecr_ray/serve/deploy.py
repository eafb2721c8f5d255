"""The Serve config file (the `serve build` format) of a recipe: both applications, their typed `args`, and every
deployment's options from the recipe, for `serve run` / `serve deploy` / a RayService."""

from __future__ import annotations

from pathlib import Path

import yaml

from ecr_ray.config import Config

APP_NAME, LLM_NAME = "ecr", "llm"


def serve_config(cfg: Config, recipe: str) -> dict:
    s = cfg.serve
    args = {"recipe": recipe, "run_dir": str(cfg.run_path)}
    if cfg.data.data_dir != "sample":
        args["data_dir"] = str(cfg.data.resolved_dir())
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": s.host, "port": s.port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "ecr_ray.serve.app:app",
                "args": dict(args),
                "deployments": [{"name": d, **s.deployment_options(d)} for d in s.DEPLOYMENTS],
            },
            {"name": LLM_NAME, "route_prefix": "/llm", "import_path": "ecr_ray.serve.llm:app", "args": dict(args)},
        ],
    }


def write_config(cfg: Config, recipe: str, path: Path) -> None:
    head = (
        f"# Ray Serve config for recipe {recipe!r}, written by `ecr-ray serve --recipe {recipe} --write-config "
        f"{path}`.\n# `serve run {path}` (or `serve deploy` to a running cluster). Deployment options come from "
        "the recipe's\n# serve.deployments: edit the recipe and regenerate.\n"
    )
    path.write_text(head + yaml.safe_dump(serve_config(cfg, recipe), sort_keys=False))
