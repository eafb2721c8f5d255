"""Build the Parquet tables (turns, feedback, samples, entities, KG) from raw data; `data download` fetches it."""

from __future__ import annotations

import sys

from ecr_ray.data.download import DownloadError, download, offline_help
from ecr_ray.data.tables import build_tables

from ._common import parse, print_json
from .cli import run_job


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["download"]:
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
    cfg, args = parse(__doc__.splitlines()[0], argv, force=True)
    manifest = build_tables(cfg, force=args.force)
    print_json(
        {k: manifest[k] for k in ("dataset", "data_dir", "counts", "not_sampled", "invalid_rows", "build_seconds")}
    )
    print(f"tables written to {cfg.run_path / 'tables'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
