"""The whole ECR pipeline: data → emotions → reviews → recommender → conversation → generator (→ merge, with
`generator.engine: vllm`), each stage with its evaluation.

Each stage is one or more jobs (`ecr_ray.jobs.<name>`), run in order with the same recipe and overrides, exactly as
when they are submitted one by one — but inside this one process: the pipeline is one Ray job. Before running a
stage it asks the stage's manifest whether it is up to date (`ecr_ray.artifacts`: a content key of the config fields,
input files and upstream stages it reads), so a rerun skips finished stages and resumes at the one that failed.
`<run_dir>/pipeline.json` records what ran, when and how long; `<run_dir>/summary.md` gathers every stage's report.

Why one process, not a subprocess per stage: every `ray.init` registers a Ray job, and every node sets up a newly
registered job's runtime_env at once (eager install). For a `working_dir`, a node's runtime-env agent that sets up a
package it has not cached deletes the package's directory and unpacks it again (Ray 2.60:
ray/_private/runtime_env/working_dir.py `WorkingDirPlugin.create` calls `download_and_unpack_package(...,
overwrite=True)`, which `shutil.rmtree`s the directory first: ray/_private/runtime_env/packaging.py). A pipeline
submitted as one job with `working_dir` whose stages were subprocesses registered a new job per stage, and nodes that
share the head's runtime-env directory (several nodes on one host without a temp dir of their own:
`ray.cluster_utils.Cluster`, Ray's fake multi-node provider) replaced the package under the running pipeline: its
`train_emotion` stage failed at an import. One process means one registration, when the pipeline connects, after
every stage's code is imported; it also saves each stage's interpreter start, imports and connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .artifacts import Stage
from .config import Config
from .stages import STAGES

log = logging.getLogger(__name__)


def pending(cfg: Config, only: list[str] | None = None, force: bool = False) -> list[Stage]:
    """The stages a run would do now (`only` these), in order."""
    return [s for s in STAGES if wanted(cfg, s, only) and (force or not s.up_to_date(cfg))]


def wanted(cfg: Config, stage: Stage, only: list[str] | None) -> bool:
    """Whether `stage` is among `only` (when given) and the recipe needs it."""
    return (not only or stage.name in only) and stage.wanted(cfg)


def run_pipeline(
    cfg: Config,
    job_args: list[str],
    run_job: Callable[[str, list[str]], int | None],
    only: list[str] | None = None,
    force: bool = False,
    log_dir: Path | None = None,
) -> dict:
    """Run the stages (or `only` these) that are not up to date; returns the pipeline state. `run_job(name, argv)`
    runs one job's main in this process (jobs/pipeline.py maps the names); Ray is joined once, by the caller. With
    `log_dir`, each job's output goes to `<log_dir>/<job>.log` (one line per job here; the log's tail when it fails).
    """
    run = cfg.run_path
    run.mkdir(parents=True, exist_ok=True)
    state_path = run / "pipeline.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    for stage in STAGES:
        if not wanted(cfg, stage, only):
            continue
        if not force and stage.up_to_date(cfg):
            log.info("[pipeline] %s: up to date (key %s), skipped", stage.name, stage.key(cfg))
            continue
        t0 = time.perf_counter()
        for i, job in enumerate(stage.jobs):
            argv = [*job_args, *(["--force"] if force and i == 0 else [])]  # the first job fits; the rest report
            log.info("[pipeline] %s: %s %s", stage.name, job, " ".join(argv))
            try:
                rc = _call(job, argv, run_job, log_dir / f"{job}.log" if log_dir else None)
            except BaseException as e:  # recorded, then raised as it is (a user mistake stays one error line)
                state[stage.name] = {"failed": job, "error": f"{type(e).__name__}: {e}"[:500]}
                state_path.write_text(json.dumps(state, indent=2))
                raise
            if rc != 0:
                state[stage.name] = {"failed": job, "returncode": rc}
                state_path.write_text(json.dumps(state, indent=2))
                raise SystemExit(
                    f"[pipeline] stage {stage.name} failed in {job} (exit {rc}); "
                    f"rerun the same command to resume from this stage"
                )
        state[stage.name] = {
            "key": stage.key(cfg),
            "seconds": round(time.perf_counter() - t0, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        state_path.write_text(json.dumps(state, indent=2))
    log.info("[pipeline] summary: %s", write_summary(run, state))
    return state


def _call(job: str, argv: list[str], run_job: Callable[[str, list[str]], int | None], log_path: Path | None) -> int:
    """Run one job in this process; with `log_path` everything it and the Ray workers it drives print (file
    descriptors 1 and 2) goes there, and only a line per job (or the log's tail) is shown."""
    if log_path is None:
        return int(run_job(job, argv) or 0)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0, rc = time.perf_counter(), 1
    try:
        with open(log_path, "w", buffering=1) as out, _output_to(out):
            rc = int(run_job(job, argv) or 0)
    finally:
        if rc == 0:
            log.info("[pipeline]   done in %.0f s (log: %s)", time.perf_counter() - t0, log_path)
        else:
            tail = log_path.read_text(errors="replace").splitlines()[-40:]
            log.error("[pipeline]   failed (exit %d); the end of %s:\n%s", rc, log_path, "\n".join(tail))
    return rc


@contextlib.contextmanager
def _output_to(out):
    """Point file descriptors 1 and 2 (C libraries, child processes, the worker logs Ray forwards to the driver) and
    Python's sys.stdout / sys.stderr at `out`, and back; the root logger too is put back as it was (a job's
    `logging.basicConfig(force=True)` binds it to `out`, which is closed once the job is done)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = [os.dup(fd) for fd in (1, 2)]
    try:
        for fd in (1, 2):
            os.dup2(out.fileno(), fd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield
    finally:
        for stream in (sys.stdout, sys.stderr, out):
            stream.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        for h in root.handlers:
            h.flush()
        root.handlers[:] = handlers
        root.setLevel(level)


def write_summary(run: Path, state: dict) -> Path:
    """One Markdown report of the run: stage timings, then each stage's own tables, and the plots."""
    lines = [f"# ECR pipeline summary: {run}", "", "| stage | seconds | finished |", "|---|---|---|"]
    lines += [
        f"| {name} | {st.get('seconds', '')} | {st.get('finished', 'failed in ' + str(st.get('failed')))} |"
        for name, st in state.items()
    ]
    emo = run / "emotions" / "classifier" / "report.json"
    if emo.exists():
        rep = json.loads(emo.read_text()).get("valid", {})
        flat = {k: v for k, v in rep.items() if isinstance(v, (int, float))}
        lines += [
            "",
            "## Emotion classifier (validation split)",
            "",
            "| " + " | ".join(flat) + " |",
            "|" + "---|" * len(flat),
            "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in flat.values()) + " |",
        ]
    for title, md in (
        ("Recommender", run / "eval" / "recommender.md"),
        ("Generator", run / "eval" / "generator" / "report.md"),
    ):
        if md.exists():
            lines += ["", f"## {title}", "", md.read_text().replace("\n# ", "\n### ")]
    plots = sorted(p.relative_to(run) for p in (run / "eval").rglob("*.png")) if (run / "eval").exists() else []
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p})" for p in plots]
    path = run / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
