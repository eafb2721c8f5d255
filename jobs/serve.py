"""Serve the ECR app (Ray Serve, HTTP on serve.host:serve.port) from a recipe's artifacts; blocks until Ctrl-C.

    ecr-ray serve --recipe demo                    # http://127.0.0.1:8000/  (web chat, /v1/recommend, ...)
    ecr-ray serve --recipe demo --llm              # + the plain base-model endpoint at /llm
    ecr-ray serve --recipe demo --write-config serve/config.yaml   # a `serve run`/`serve deploy` file, then exit
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import yaml

from ecr_ray.config import Config

from ._common import parse

APP_NAME, LLM_NAME = "ecr", "llm"


def serve_config(cfg: Config, recipe: str) -> dict:
    """The Serve config file (the `serve build` format) for this recipe, with its deployment options."""
    def env():  # a fresh dict each time: no YAML anchors in the file
        return {"env_vars": {"ECR_RECIPE": recipe}}

    s = cfg.serve
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": s.host, "port": s.port},
        "applications": [
            {"name": APP_NAME, "route_prefix": "/", "import_path": "serve.app:app", "runtime_env": env(),
             "deployments": [{"name": d, **s.deployment_options(d)} for d in s.DEPLOYMENTS]},
            {"name": LLM_NAME, "route_prefix": "/llm", "import_path": "serve.llm:app", "runtime_env": env()},
        ],
    }


def write_config(cfg: Config, recipe: str, path: Path) -> None:
    head = (f"# Ray Serve config for recipe {recipe!r}, written by `ecr-ray serve --recipe {recipe} --write-config "
            f"{path}`.\n# Run from the repository root: `serve run {path}` (or `serve deploy` to a running cluster).\n"
            "# Deployment options come from the recipe's serve.deployments; edit the recipe and regenerate.\n")
    path.write_text(head + yaml.safe_dump(serve_config(cfg, recipe), sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--llm", action="store_true", help="also serve the base-model OpenAI endpoint at /llm")
        p.add_argument("--write-config", metavar="PATH", help="write the Serve config file for this recipe and exit")

    cfg, args = parse(__doc__, argv, extra)
    if args.write_config:
        write_config(cfg, args.recipe, Path(args.write_config))
        print(f"wrote {args.write_config}", file=sys.stderr)
        return 0

    import ray
    from ray import serve

    from serve.app import build_app

    host, port = cfg.serve.host, cfg.serve.port
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # `kill` = Ctrl-C
    ray.init(include_dashboard=False)
    try:
        serve.start(http_options={"host": host, "port": port})
        try:
            serve.run(build_app(cfg), name=APP_NAME, route_prefix="/")
            if args.llm:
                from serve.llm import build_app as build_llm

                serve.run(build_llm(cfg), name=LLM_NAME, route_prefix="/llm")
        except RuntimeError as e:  # a replica failed to start: usually a missing artifact; say which
            print(f"error: the app did not start: {str(e).strip().splitlines()[-1]}\n"
                  f"(train the stages first: `ecr-ray pipeline --recipe {args.recipe}`)", file=sys.stderr)
            return 2
        url = f"http://{host}:{port}"
        print(f"ECR is serving recipe {args.recipe!r} at {url}/  (POST {url}/v1/recommend, "
              f"OpenAI base_url {url}/v1{', base model at ' + url + '/llm/v1' if args.llm else ''}); Ctrl-C stops",
              flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
        return 0
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    from ecr_ray.cli import run_job

    sys.exit(run_job(main))
