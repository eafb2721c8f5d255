"""The stage registry (ecr_ray/stages.py): each stage declared once, by its package, and the pipeline driven by the
registry alone — a stage added there runs, is skipped when up to date and reruns when what it reads changes."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json

from ecr_ray import pipeline
from ecr_ray.artifacts import Stage
from ecr_ray.config import Config, load_config
from ecr_ray.stages import BY_NAME, STAGES


def test_every_stage_is_declared_once_in_pipeline_order_and_fitted_by_its_first_job():
    assert len(BY_NAME) == len(STAGES) and len({s.dir for s in STAGES}) == len(STAGES)
    for i, stage in enumerate(STAGES):
        assert all(up in STAGES[:i] for up in stage.after), f"{stage.name} runs before a stage it reads"
        assert stage.section in {f.name for f in dataclasses.fields(Config)}, stage.section
        fit_job = importlib.import_module(f"ecr_ray.jobs.{stage.jobs[0]}")
        assert fit_job.STAGE is stage, f"ecr_ray/jobs/{stage.jobs[0]}.py does not fit {stage.name}"
        for job in stage.jobs[1:]:
            assert callable(importlib.import_module(f"ecr_ray.jobs.{job}").main)


def test_what_a_stage_reads_names_real_config_fields():
    """A misspelt `section.-field` would silently leave a field in the key (every change of it retrains)."""
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    cfg = load_config("demo").to_dict()
    for stage in STAGES:
        for spec in stage.reads:
            section, _, name = spec.partition(".")
            assert section in sections, f"{stage.name}.reads: {spec}"
            assert not name or name.lstrip("-") in cfg[section], f"{stage.name}.reads: {spec} is not a field"


def test_every_fit_takes_the_config_and_a_keyword_only_force():
    for stage in STAGES:
        params = list(inspect.signature(stage.fit).parameters.values())
        assert params[0].name == "cfg" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, stage.name
        assert params[1].name == "force" and params[1].default is False, stage.name
        # a stage's own options come after, keyword-only with defaults: `stage.fit(cfg, force=...)` always works
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not p.empty for p in params[1:])


def _toy_stage(name: str, after: tuple[Stage, ...] = ()) -> Stage:
    def fit(cfg: Config, *, force: bool = False) -> dict:
        if done := stage.done(cfg, force):
            return done
        out = stage.path(cfg)
        out.mkdir(parents=True, exist_ok=True)
        runs = int((out / "runs").read_text()) + 1 if (out / "runs").exists() else 1
        (out / "runs").write_text(str(runs))
        (out / "out.txt").write_text(f"seed {cfg.seed}")
        return stage.write_manifest(cfg, runs=runs)

    stage = Stage(name, "data", name, reads=("seed",), writes=("out.txt",), fit=fit, jobs=(name,), after=after)
    return stage


def test_a_stage_added_to_the_registry_runs_skips_when_fresh_and_reruns_with_what_it_reads(tmp_path, monkeypatch):
    first = _toy_stage("first")
    second = _toy_stage("second", after=(first,))
    monkeypatch.setattr(pipeline, "STAGES", (first, second))

    def run(cfg: Config, force: bool = False, only: list[str] | None = None) -> dict:
        by_job = {"first": first, "second": second}
        return pipeline.run_pipeline(
            cfg, [], lambda job, argv: by_job[job].fit(cfg, force="--force" in argv) and 0, only, force
        )

    def runs(stage: Stage) -> int:
        return int((stage.path(cfg) / "runs").read_text())

    cfg = load_config("demo", {"run_dir": str(tmp_path)})
    state = run(cfg)
    assert list(state) == ["first", "second"] and (runs(first), runs(second)) == (1, 1)
    assert json.loads((tmp_path / "pipeline.json").read_text()) == state
    assert pipeline.pending(cfg) == []
    run(cfg)  # up to date: nothing runs again
    assert (runs(first), runs(second)) == (1, 1)
    run(cfg, force=True, only=["first"])  # forced upstream: same key, so the downstream stays fresh
    assert (runs(first), runs(second)) == (2, 1) and pipeline.pending(cfg) == []
    (second.path(cfg) / "out.txt").unlink()  # an output gone: that stage alone reruns
    assert pipeline.pending(cfg) == [second]
    run(cfg)
    assert (runs(first), runs(second)) == (2, 2)
    cfg = load_config("demo", {"run_dir": str(tmp_path), "seed": cfg.seed + 1})  # what both read changed
    assert pipeline.pending(cfg) == [first, second]
    run(cfg)
    assert (runs(first), runs(second)) == (3, 3) and second.is_fresh(cfg)
