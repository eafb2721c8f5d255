"""What every job shares: argument parsing into a Config, logging, and Ray."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import sys
from collections.abc import Callable, Iterator

from ecr_ray import cluster
from ecr_ray.artifacts import Stage
from ecr_ray.config import Config, add_config_args, config_from_args
from ecr_ray.runtime import connect
from ecr_ray.stages import STAGES


def parse(
    description: str, argv: list[str] | None, extra_args=None, force: bool = False
) -> tuple[Config, argparse.Namespace]:
    """`--recipe`, `--data-dir`, `--run-dir`, `--skip-invalid`, `--address`, `--log-level` (+ `--force` for stages
    that skip when up to date, + the job's own `extra_args`), and any `--section.field value` override."""
    parser = argparse.ArgumentParser(
        description=description, epilog="Any config field can be overridden: --section.field value"
    )
    add_config_args(parser)
    parser.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a fresh local instance)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    if force:
        parser.add_argument("--force", action="store_true", help="redo the stage even if it is up to date")
    if extra_args:
        extra_args(parser)
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=args.log_level, format="%(message)s", stream=sys.stderr, force=True)
    return config_from_args(args, rest), args


@contextlib.contextmanager
def ray_for(
    args: argparse.Namespace, cfg: Config | None = None, jobs: tuple[str, ...] = (), apps: list[str] | None = None
) -> Iterator[None]:
    """Ray for this job: the cluster of `--address` / RAY_ADDRESS, else a fresh local instance. With `cfg`, first
    the check that every piece of Ray work `jobs` ask for (`apps`: the Serve applications) fits some node type of
    the cluster (`ecr_ray.cluster`): a request none can hold fails here, before any work, instead of waiting forever."""
    with connect(args.address):
        if cfg is not None:
            cluster.check(cfg, jobs, apps)
        yield


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


BULKY = ("losses", "inputs", "history")
"""Manifest fields a stage job does not print (per-step losses, per-file hashes): they stay in the manifest."""


def stage_job(
    stage: Stage,
    doc: str,
    extra_args: Callable[[argparse.ArgumentParser], None] | None = None,
    options: Callable[[argparse.Namespace], dict] | None = None,
    ray: Callable[[argparse.Namespace], bool] = lambda args: True,
) -> Callable[[list[str] | None], int]:
    """The main of the job that fits `stage` (its first job): recipe + overrides, `--force` and the job's
    `extra_args`; then, on Ray unless `ray(args)` says not, after the check that the stage's Ray work fits the
    cluster, `stage.fit(cfg, force=..., **options(args))`; the manifest (less `BULKY`) on stdout."""

    def main(argv: list[str] | None = None) -> int:
        cfg, args = parse(doc.splitlines()[0], argv, extra_args, force=True)
        with ray_for(args, cfg, stage.jobs[:1]) if ray(args) else contextlib.nullcontext():
            manifest = stage.fit(cfg, force=args.force, **(options(args) if options else {}))
        print_json({k: v for k, v in manifest.items() if k not in BULKY})
        print(f"{stage.name} written to {stage.path(cfg)}", file=sys.stderr)
        return 0

    main.__module__ = f"ecr_ray.jobs.{stage.jobs[0]}"  # what run_job's last line names
    main.__doc__ = doc
    return main


def resumable(p: argparse.ArgumentParser) -> None:
    """The flags of a resumable training job (`train_generator`, `train_conversation`)."""
    p.add_argument("--run-name", help="Ray Train run name; rerun it to resume (default: keyed by the config)")
    p.add_argument(
        "--stop-after-steps",
        type=int,
        default=0,
        help="end this invocation after this many steps in all (resume later with the same run name)",
    )


def resumable_options(args: argparse.Namespace) -> dict:
    return {"run_name": args.run_name, "stop_after_steps": args.stop_after_steps}


def job_main(name: str) -> Callable[[list[str] | None], int]:
    """Job `name`'s main: its module's (`ecr_ray/jobs/<name>.py`); for the fitting job of a stage declared without a
    module of its own, `stage_job` of that stage, described by its `fit`'s module docstring."""
    if importlib.util.find_spec(f"ecr_ray.jobs.{name}") is not None:
        return importlib.import_module(f"ecr_ray.jobs.{name}").main
    stage = next((s for s in STAGES if s.jobs[0] == name), None)
    if stage is None:
        raise ModuleNotFoundError(f"no job {name!r}: no ecr_ray/jobs/{name}.py, and no stage it fits")
    return stage_job(stage, sys.modules[stage.fit.__module__].__doc__ or f"Fit the {stage.name} stage.")
