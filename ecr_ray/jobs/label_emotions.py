"""Label user-turn emotions with an LLM (paper §4.1.1, Appendix A.1) over any OpenAI-compatible endpoint.

Ray Data actors keep requests in flight and write finished batches as Parquet shards under
<run_dir>/emotions/llm_labels/; a rerun labels only what is missing. Without --llm-base-url the project's own
endpoint (the embedded SmolLM2) is started as a Serve application and deleted afterwards. The API key is read from
OPENAI_API_KEY only.
"""

from __future__ import annotations

import dataclasses
import sys

from ecr_ray.labelling.data import endpoint_model
from ecr_ray.labelling.label import fit

from ._common import parse, print_json, ray_for
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--llm-base-url", help="OpenAI-compatible base URL (default: start the embedded-model server)")
        p.add_argument(
            "--llm-model", help="model name sent to the endpoint (default: the one the project's own endpoint serves)"
        )

    cfg, args = parse(__doc__.splitlines()[0], argv, extra)
    over = {k: v for k, v in (("llm_base_url", args.llm_base_url), ("llm_model", args.llm_model)) if v}
    if over:
        cfg = dataclasses.replace(cfg, emotion=dataclasses.replace(cfg.emotion, **over))
    endpoint_model(cfg)  # a model the endpoint does not serve: refused before Ray starts
    with ray_for(args, cfg, ("label_emotions",)):
        summary = fit(cfg)
    print_json(summary)
    return 0 if summary["missing"] == 0 and summary["duplicates"] == 0 and not summary["errors"]["count"] else 1


if __name__ == "__main__":
    sys.exit(run_job(main))
