"""Serve the ECR app (Ray Serve, HTTP on serve.host:serve.port) from a recipe's artifacts; blocks until stopped.

ecr-ray serve --recipe demo                    # http://127.0.0.1:8000/  (web chat, /v1/recommend, ...)
ecr-ray serve --recipe demo --llm              # + the plain base-model endpoint at /llm
ecr-ray serve --recipe cpu --write-config serve.yaml    # a `serve run` / `serve deploy` file, then exit
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from ecr_ray.data.tables import check_run_data
from ecr_ray.llm_server import build_app as build_llm
from ecr_ray.serve import guard
from ecr_ray.serve.app import build_app
from ecr_ray.serve.deploy import APP_NAME, LLM_NAME, check_fits, write_config
from ecr_ray.stages import check_built_by_this_code

from ._common import parse, ray_for
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--llm", action="store_true", help="also serve the base-model OpenAI endpoint at /llm")
        p.add_argument("--write-config", metavar="PATH", help="write the Serve config file for this recipe and exit")

    cfg, args = parse(__doc__.splitlines()[0], argv, extra)
    check_run_data(cfg)  # a run served with other data than it was built from fails on every request: refuse now
    check_built_by_this_code(cfg)  # so does a run an older ecr-ray built
    if args.write_config:
        write_config(cfg, args.recipe, Path(args.write_config))
        print(f"wrote {args.write_config}", file=sys.stderr)
        return 0

    from ray import serve

    host, port = cfg.serve.host, cfg.serve.port
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill`: leave through the finally below
    if args.address or os.environ.get("RAY_ADDRESS"):
        if os.environ.get(guard.CALLBACK_ENV) != guard.CALLBACK:
            print(
                f"note: request-header limits hold only if the cluster's processes run with "
                f"{guard.CALLBACK_ENV}={guard.CALLBACK} (docs/serve.md)",
                file=sys.stderr,
            )
    else:  # the local Ray instance started below, and its Serve proxy, inherit the header limits
        os.environ.update(guard.proxy_env(cfg.serve))
    with ray_for(args, cfg, ("serve",), [APP_NAME, LLM_NAME] if args.llm else [APP_NAME]):
        check_fits(cfg, [APP_NAME, LLM_NAME] if args.llm else [APP_NAME])
        serve.start(proxy_location=cfg.serve.proxy_location, http_options={"host": host, "port": port})
        started = []
        try:
            try:
                serve.run(build_app(cfg), name=APP_NAME, route_prefix="/")
                started.append(APP_NAME)
                if args.llm:
                    serve.run(build_llm(cfg), name=LLM_NAME, route_prefix="/llm")
                    started.append(LLM_NAME)
            except RuntimeError as e:  # a replica failed to start: usually a missing artifact; say which
                print(
                    f"error: the app did not start: {str(e).strip().splitlines()[-1]}\n"
                    f"(train the stages first: `ecr-ray pipeline --recipe {args.recipe}`)",
                    file=sys.stderr,
                )
                return 2
            url = f"http://{host}:{port}"
            print(
                f"ECR is serving recipe {args.recipe!r} at {url}/  (POST {url}/v1/recommend, OpenAI base_url "
                f"{url}/v1{', base model at ' + url + '/llm/v1' if args.llm else ''}); Ctrl-C stops",
                flush=True,
            )
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
            return 0
        finally:
            for name in started:  # only the applications this job started; others on the cluster stay
                serve.delete(name)


if __name__ == "__main__":
    sys.exit(run_job(main))
