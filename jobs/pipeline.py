"""Run the whole ECR pipeline: data → emotions → reviews → recommender → generator → evaluation (→ serve).

Each stage is one job (`python -m jobs.<name>`) run as a subprocess with the same recipe and overrides, so the
pipeline behaves exactly like submitting the jobs one by one. A stage is skipped when it finished before with the
same key: a content hash of the config sections it reads plus the keys of the stages it depends on. State lives in
`<run_dir>/pipeline.json`, written after every stage, so a crashed pipeline resumes at the stage that failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ecr_ray.cli import run_job
from ecr_ray.config import Config

from ._common import parse


@dataclass(frozen=True)
class Stage:
    name: str
    jobs: tuple[str, ...]
    """Job modules run in order."""
    sections: tuple[str, ...]
    """Config sections whose content decides whether the stage must rerun."""
    after: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    """Paths under run_dir that must exist for a finished stage to count as done."""


STAGES = (
    Stage("data", ("data",), ("data", "seed"), (), ("tables/manifest.json",)),
    Stage("emotions", ("train_emotion",), ("emotion",), ("data",), ("emotions/entity_emotions.parquet",)),
    Stage("reviews", ("build_reviews",), ("data", "generator"), ("data",), ("reviews/movie_knowledge.parquet",)),
    Stage("recommender", ("train_recommender", "evaluate_recommender"), ("recommender",), ("data", "emotions"),
          ("recommender",)),
    Stage("generator", ("train_generator", "evaluate_generator"), ("generator",), ("reviews",), ("generator",)),
)


def stage_key(cfg: Config, stage: Stage, keys: dict[str, str]) -> str:
    d = cfg.to_dict()
    blob = json.dumps({"sections": {s: d[s] for s in stage.sections}, "after": {a: keys[a] for a in stage.after}},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_pipeline(cfg: Config, job_args: list[str], only: list[str] | None = None, force: bool = False) -> dict:
    run = cfg.run_path
    run.mkdir(parents=True, exist_ok=True)
    state_path = run / "pipeline.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    keys: dict[str, str] = {}
    for stage in STAGES:
        keys[stage.name] = key = stage_key(cfg, stage, keys)
        done = state.get(stage.name, {})
        outputs_ok = all((run / p).exists() for p in stage.outputs)
        if only and stage.name not in only:
            continue
        if not force and done.get("key") == key and outputs_ok:
            print(f"[pipeline] {stage.name}: up to date (key {key}), skipped", flush=True)
            continue
        t0 = time.perf_counter()
        for job in stage.jobs:
            cmd = [sys.executable, "-m", f"jobs.{job}", *job_args]
            print(f"[pipeline] {stage.name}: {' '.join(cmd[1:])}", flush=True)
            rc = subprocess.call(cmd, env=os.environ.copy())
            if rc != 0:
                state[stage.name] = {"key": None, "failed": job, "returncode": rc}
                state_path.write_text(json.dumps(state, indent=2))
                raise SystemExit(f"[pipeline] stage {stage.name} failed in jobs.{job} (exit {rc}); "
                                 f"rerun the same command to resume from this stage")
        state[stage.name] = {"key": key, "seconds": round(time.perf_counter() - t0, 1),
                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        state_path.write_text(json.dumps(state, indent=2))
    print(f"[pipeline] summary: {write_summary(run, state)}", flush=True)
    return state


def write_summary(run: Path, state: dict) -> Path:
    """One Markdown report of the run: stage timings, then each stage's own tables, and the plots."""
    lines = [f"# ECR pipeline summary: {run}", "", "| stage | seconds | finished |", "|---|---|---|"]
    lines += [f"| {name} | {st.get('seconds', '')} | {st.get('finished', 'failed in ' + str(st.get('failed')))} |"
              for name, st in state.items()]
    emo = run / "emotions" / "classifier" / "report.json"
    if emo.exists():
        rep = json.loads(emo.read_text()).get("valid", {})
        flat = {k: v for k, v in rep.items() if isinstance(v, (int, float))}
        lines += ["", "## Emotion classifier (validation split)", "",
                  "| " + " | ".join(flat) + " |", "|" + "---|" * len(flat),
                  "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in flat.values()) + " |"]
    for title, md in (("Recommender", run / "eval" / "recommender.md"),
                      ("Generator", run / "eval" / "generator" / "report.md")):
        if md.exists():
            lines += ["", f"## {title}", "", md.read_text().replace("\n# ", "\n### ")]
    plots = sorted(p.relative_to(run) for p in (run / "eval").rglob("*.png")) if (run / "eval").exists() else []
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p})" for p in plots]
    path = run / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Pipeline-only flags are stripped; everything else (recipe, overrides) goes to every stage unchanged.
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--only", nargs="+", choices=[s.name for s in STAGES], help="run only these stages")
    own.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    flags, job_args = own.parse_known_args(argv)
    cfg, _ = parse(__doc__.splitlines()[0], job_args)
    state = run_pipeline(cfg, job_args, flags.only, flags.force)
    print(json.dumps(state, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
