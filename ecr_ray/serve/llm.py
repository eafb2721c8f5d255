"""The `/llm` application: the project's OpenAI-compatible endpoint on the base chat model (`ecr_ray/llm_server.py`,
where the model, the routes and `start_local` live), as a Serve import path:

    serve run ecr_ray.serve.llm:app recipe=demo         # or a Serve config's `import_path`, as `ecr-ray serve` writes
"""

from ecr_ray.api import AppArgs
from ecr_ray.llm_server import build_app

from .deploy import LLM_NAME, check_fits


def app(args: AppArgs):
    """Typed application builder: `serve run ecr_ray.serve.llm:app recipe=demo`, or a Serve config's `args:`; the
    deployments must fit the cluster."""
    cfg = args.config()
    check_fits(cfg, args.apps or [LLM_NAME])
    return build_app(cfg)
