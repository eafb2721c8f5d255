"""`ecr-ray <command>`: one CLI whose commands are the jobs of this package (each also
`python -m ecr_ray.jobs.<name>`, the form `ray job submit` runs) and the fitting job of every stage of the registry
(a stage declared without a job module: `python -m ecr_ray.jobs.cli <name>`)."""

from __future__ import annotations

import pkgutil
import resource
import sys
from collections.abc import Callable
from pathlib import Path

from ecr_ray import jobs
from ecr_ray.config import ConfigError
from ecr_ray.data.errors import DataError
from ecr_ray.stages import STAGES

from ._common import job_main


def run_job(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a job's main; user mistakes (bad config, bad input rows) print one clear line, not a traceback. At the end
    the driver reports its own peak memory: model work belongs in Ray tasks, actors and Train workers, so on a
    cluster's head this should stay small (docs/cluster.md)."""
    try:
        rc = int(main(argv) or 0)
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)  # one line, and nothing after it
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    name = Path(sys.argv[0]).stem if main.__module__ == "__main__" else main.__module__.rsplit(".", 1)[-1]
    print(f"{name}: driver peak RSS {rss:.0f} MB", file=sys.stderr)
    return rc


def job_names() -> list[str]:
    modules = {m.name for m in pkgutil.iter_modules(jobs.__path__) if not m.name.startswith("_") and m.name != "cli"}
    return sorted(modules | {s.jobs[0] for s in STAGES})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = job_names()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: ecr-ray <command> [--recipe demo|cpu|paper|file.yaml] [--section.field value ...]\n")
        print("commands (each is also `python -m ecr_ray.jobs.<command>`; a stage's without a module of its own:")
        print("`python -m ecr_ray.jobs.cli <command>`):")
        for n in names:
            main = job_main(n)
            module = sys.modules.get(main.__module__)  # none for a stage without a job module: its main's doc
            doc = ((module.__doc__ if module else main.__doc__) or "").strip().splitlines()
            print(f"  {n:22s} {doc[0] if doc else ''}")
        return 0
    cmd = argv[0].replace("-", "_")
    if cmd not in names:
        print(f"error: unknown command {argv[0]!r}; commands: {', '.join(names)}", file=sys.stderr)
        return 2
    return run_job(job_main(cmd), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
