"""Build the Parquet tables (turns, feedback, samples, entities, KG) from raw data; `data download` fetches it."""

from __future__ import annotations

import sys

from ecr_ray.data.download import DownloadError, download, offline_help
from ecr_ray.data.tables import STAGE

from ._common import parse, stage_job
from .cli import run_job

build = stage_job(STAGE, __doc__, ray=lambda args: False)  # Python and pyarrow on the driver: no Ray work


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["download"]:
        return build(argv)
    cfg, args = parse(
        "Download the official raw data (sha256-checked).",
        argv[1:],
        lambda p: p.add_argument("--force", action="store_true", help="re-download existing files"),
    )
    data_dir = cfg.data.resolved_dir()
    try:
        download(data_dir, force=args.force)
    except DownloadError as e:
        print(f"error: {e}\n\n{offline_help(data_dir)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
