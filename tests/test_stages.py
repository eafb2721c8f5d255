"""The stage registry (ecr_ray/stages.py): each stage declared once, by its package, and the pipeline driven by the
registry alone — a stage added there runs, is skipped when up to date and reruns when what it reads changes."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ecr_ray import cluster, pipeline
from ecr_ray.artifacts import Stage
from ecr_ray.config import PROJECT_ROOT, Config, ConfigError, Resources, load_config
from ecr_ray.jobs import serve as serve_job
from ecr_ray.jobs.cli import run_job
from ecr_ray.stages import BY_NAME, STAGES, check_built_by_this_code


def test_every_stage_is_declared_once_in_pipeline_order_and_fitted_by_its_first_job():
    assert len(BY_NAME) == len(STAGES) and len({s.dir for s in STAGES}) == len(STAGES)
    for i, stage in enumerate(STAGES):
        assert all(up in STAGES[:i] for up in stage.after), f"{stage.name} runs before a stage it reads"
        assert stage.section in {f.name for f in dataclasses.fields(Config)}, stage.section
        if importlib.util.find_spec(f"ecr_ray.jobs.{stage.jobs[0]}"):  # else `ecr-ray <job>` fits it (below)
            fit_job = importlib.import_module(f"ecr_ray.jobs.{stage.jobs[0]}")
            assert fit_job.STAGE is stage, f"ecr_ray/jobs/{stage.jobs[0]}.py does not fit {stage.name}"
        for job in stage.jobs[1:]:
            assert callable(importlib.import_module(f"ecr_ray.jobs.{job}").main)


def test_what_a_stage_reserves_names_its_jobs_and_real_resources_fields():
    for stage in STAGES:
        for job, fields in stage.resources.items():
            assert job in stage.jobs, f"{stage.name}.resources: {job}"
            for name in fields:
                section, _, field = name.partition(".")
                value = getattr(getattr(Config(), section, None), field, None)
                assert isinstance(value, Resources), f"{stage.name}.resources[{job}]: {name} is not a Resources field"
            assert cluster.JOB_RESOURCES[job] == tuple(fields)
    with pytest.raises(ValueError, match="names jobs it does not run"):
        dataclasses.replace(STAGES[0], resources={"no_such_job": ()})


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


TOY_PACKAGE = '''
"""Count the words of the seed: a stage added to the registry, without a job module of its own."""

from ecr_ray.artifacts import Stage
from ecr_ray.config import Config


def fit(cfg: Config, *, force: bool = False) -> dict:
    if done := STAGE.done(cfg, force):
        return done
    import ray

    count = ray.remote(count_words)
    out = STAGE.path(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "words.txt").write_text(str(ray.get(count.remote(str(cfg.seed)))))  # on Ray, as stages are
    return STAGE.write_manifest(cfg)


def count_words(text: str) -> int:
    return len(text.split())


STAGE = Stage(
    "toy", "data", "toy", reads=("seed",), writes=("words.txt",), fit=fit, jobs=("count_words",),
    resources={"count_words": ("emotion.label_resources",)},
)
'''


def test_a_stage_is_added_by_its_package_and_one_registry_line(tmp_path):
    """Adding a stage: its package (here `toy`, on the path) and one line in the registry — no job module, no
    resource table, no pipeline edit. In a fresh interpreter, the registry extended before anything reads it:
    `ecr-ray` lists its job, the pipeline runs it on Ray, the cluster check and `jobs/<recipe>/` see its request."""
    (tmp_path / "toy.py").write_text(TOY_PACKAGE)
    script = textwrap.dedent(
        f"""
        import json
        import toy
        from ecr_ray import stages
        stages.STAGES = (*stages.STAGES, toy.STAGE)  # the one registry line
        from ecr_ray import cluster, submission
        from ecr_ray.jobs import cli
        assert cli.main(["--help"]) == 0
        argv = ["--recipe", "demo", "--run-dir", {str(tmp_path / "run")!r}]
        assert cli.main(["pipeline", "--only", "toy", *argv]) == 0
        print(json.dumps({{"spec": submission.job_spec("demo", "count_words"),
                           "resources": cluster.JOB_RESOURCES["count_words"]}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)])}  # Ray's workers too
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = [line for line in done.stdout.splitlines() if line.strip().startswith("count_words")]
    assert listed and "Count the words of the seed" in listed[0], done.stdout[:3000]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["spec"]["entrypoint"] == "python -m ecr_ray.jobs.cli count_words --recipe demo"
    assert result["resources"] == ["emotion.label_resources"]
    cfg = load_config("demo", {"run_dir": str(tmp_path / "run")})
    assert (tmp_path / "run" / "toy" / "words.txt").read_text() == str(len(str(cfg.seed).split()))
    assert "toy" in json.loads((tmp_path / "run" / "pipeline.json").read_text())


def test_a_run_an_older_ecr_ray_built_is_refused_naming_the_stage_and_the_rebuild(tmp_path, capsys):
    """Served as it is, such a run can fail every request (the serving code reads what the newer stage writes, e.g.
    the recommender's mention ages of version 2) while /healthz says ready: refused at start instead."""
    cfg = load_config("demo", {"run_dir": str(tmp_path)})
    rec = BY_NAME["recommender"]
    dataclasses.replace(rec, version=rec.version - 1).write_manifest(cfg)  # as the code before the last bump wrote it
    assert rec.built_by_older_code(cfg) == rec.version - 1
    with pytest.raises(
        ConfigError, match=f"recommender \\(version {rec.version - 1}, this code writes {rec.version}\\)"
    ):
        check_built_by_this_code(cfg)
    assert run_job(serve_job.main, ["--recipe", "demo", "--run-dir", str(tmp_path)]) == 2  # before Ray: one line
    err = capsys.readouterr().err
    assert "built by an older ecr-ray" in err and f"ecr-ray pipeline --recipe demo --run-dir {tmp_path}" in err, err
    assert "Traceback" not in err
    check_built_by_this_code(load_config("demo", {"run_dir": str(tmp_path), "recommender.epochs": 99}))  # not older
    rec.write_manifest(cfg)  # rebuilt by this code
    assert rec.built_by_older_code(cfg) is None
    check_built_by_this_code(cfg)
