"""`ecr-ray <command>`: one CLI whose commands are the jobs in `jobs/` (each also `python -m jobs.<name>`)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Callable

from .config import ConfigError
from .data.errors import DataError


def run_job(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a job's main; user mistakes (bad config, bad input rows) print one clear line, not a traceback."""
    try:
        return int(main(argv) or 0)
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def job_names() -> list[str]:
    import jobs

    return sorted(m.name for m in pkgutil.iter_modules(jobs.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = job_names()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: ecr-ray <command> [--recipe demo|cpu|paper|file.yaml] [--section.field value ...]\n")
        print("commands (each is also `python -m jobs.<command>`):")
        for n in names:
            doc = (importlib.import_module(f"jobs.{n}").__doc__ or "").strip().splitlines()
            print(f"  {n:22s} {doc[0] if doc else ''}")
        return 0
    cmd = argv[0].replace("-", "_")
    if cmd not in names:
        print(f"error: unknown command {argv[0]!r}; commands: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"jobs.{cmd}")
    return run_job(module.main, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
