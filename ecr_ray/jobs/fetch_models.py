"""Download every Hugging Face model the recipe names into the Hugging Face cache (HF_HOME), once.

    ecr-ray fetch_models --recipe paper       # gated models (Llama-2) need HF_TOKEN

Embedded models and local paths need nothing. Run it where huggingface.co is reachable, with HF_HOME on the storage
every node shares (cluster/*.yaml set it); the other jobs and the Serve replicas then load from there, never
downloading when the recipe says `offline: true` (or HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import os
import sys

from ecr_ray.hub import fetch_all

from ._common import parse, print_json
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    cfg, _ = parse(__doc__.splitlines()[0], argv)
    report = fetch_all(cfg)
    print_json(report)
    print(f"models cached under {os.environ.get('HF_HOME', '~/.cache/huggingface')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
