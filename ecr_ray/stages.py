"""The pipeline's stages, in the order they run. Each is declared once, by its package, as the `STAGE` beside its
`fit` (name, config section, what it reads and writes, upstream stages, `fit(cfg, *, force) -> manifest`, its jobs
and what their Ray work reserves; `ecr_ray.artifacts.Stage`). Adding a stage: its package with its `STAGE`, one line
here, its recipe fields. `ecr-ray <its first job>` then fits it (ecr_ray/jobs/_common.py:job_main); a job module
under ecr_ray/jobs is needed only for options of its own or a report job."""

from __future__ import annotations

from .artifacts import Stage
from .config import Config, ConfigError
from .conversation import train as conversation
from .data import tables
from .emotion import train as emotion
from .generator import merge
from .generator import train as generator
from .recommender import train as recommender
from .reviews import build as reviews

STAGES: tuple[Stage, ...] = (
    tables.STAGE,
    emotion.STAGE,
    reviews.STAGE,
    recommender.STAGE,
    conversation.STAGE,
    generator.STAGE,
    merge.STAGE,  # generator.engine vllm: the weights it loads
)
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}


def check_built_by_this_code(cfg: Config) -> None:
    """Refuse to read a run whose stages an older version of this code built, from this same config (a stage's
    `version` was bumped since: what it writes changed, e.g. new columns the serving code reads). Served as it is,
    such a run can fail every request while its health check says ready; rebuilt, it is current."""
    old = [(s, v) for s in STAGES if s.wanted(cfg) and (v := s.built_by_older_code(cfg))]
    if old:
        shown = ", ".join(f"{s.name} (version {v}, this code writes {s.version})" for s, v in old)
        raise ConfigError(
            f"run {cfg.run_path}: built by an older ecr-ray: {shown}. Rebuild what changed (the rest is kept): "
            f"`ecr-ray pipeline --recipe {cfg.recipe} --run-dir {cfg.run_path}`, with the overrides it was built with"
        )
