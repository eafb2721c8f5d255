"""The mechanism every stage's outputs share: what a stage is (`Stage`), its content key, its manifest, and whether it
is up to date. Which stages exist is not said here: each stage package declares its own `STAGE` beside its `fit`, and
`ecr_ray.stages` lists them in pipeline order.

Every stage writes `<run_dir>/<stage dir>/manifest.json` holding its `key`: a hash of the stage's version, of the
config fields the stage reads, of the files it reads from outside the run directory (raw data, seed labels, reviews)
and of the keys of the stages it reads from. A stage is up to date when its manifest holds the key the current config
gives and its outputs exist. `pipeline` asks `up_to_date` before running a stage, and each stage's `fit` asks
`done` too before doing work again, so a rerun of anything skips what is done and resumes what is not.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import Config

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, declared once, in its package, beside its `fit` (ecr_ray/stages.py lists them)."""

    name: str
    """The stage's name: `pipeline --only`, pipeline.json, its manifest's `stage`."""
    section: str
    """The config section that configures it (a recipe's `<section>:`)."""
    dir: str
    """Where the stage writes, under run_dir; `{variant}` stands for the recommender's name (recommender.variant, with
    `+copy` when recommender.copy_mentioned)."""
    reads: tuple[str, ...]
    """Config fields the output depends on: "section" (all of it), "section.field", or "section.-field" to take a
    whole section but that field (resources and inference-only settings never force a retrain)."""
    writes: tuple[str, ...]
    """Files under the stage's dir that must exist for it to count as done."""
    fit: Callable[..., dict]
    """`fit(cfg, *, force=False) -> manifest`: build the outputs unless up to date (Ray initialised by the caller;
    a stage's own keyword-only options have defaults)."""
    jobs: tuple[str, ...]
    """Jobs the pipeline runs for it, in order: the first calls `fit` (and takes `--force`; its module
    `ecr_ray/jobs/<name>.py` is optional: without one, `ecr-ray <name>` runs `fit` with the common options), the
    others report on its outputs (modules of their own)."""
    resources: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    """Per job, the recipe fields (`section.field`, of type `Resources`) whose resources its Ray work reserves:
    what `ecr_ray.cluster` checks against the node types before the job runs, and `jobs/<recipe>/*.yaml` list."""
    after: tuple[Stage, ...] = ()
    """Stages whose outputs this one reads."""
    reports: tuple[str, ...] = ()
    """Files under run_dir the report jobs write: a missing one reruns the stage's jobs."""
    inputs: Callable[[Config], list[Path]] | None = None
    """Files outside the run directory the stage reads (hashed into the key)."""
    needed: Callable[[Config], bool] | None = None
    """Whether a recipe needs the stage at all (None: always)."""
    version: int = 1
    """Bumped when the code changes what the stage writes from the same config and inputs, so older outputs
    rebuild."""

    def __post_init__(self) -> None:
        if unknown := sorted(set(self.resources) - set(self.jobs)):
            raise ValueError(f"stage {self.name}: `resources` names jobs it does not run: {unknown}")

    def path(self, cfg: Config) -> Path:
        return cfg.run_path / self.dir.format(variant=cfg.recommender.name)

    def key(self, cfg: Config) -> str:
        """The content key the current config gives this stage (upstream stages by the keys in their manifests)."""
        # By content, not by path: the same data under another folder (a job's working dir) is the same input.
        inputs = [(p.name, file_hash(p) if p.exists() else None) for p in (self.inputs(cfg) if self.inputs else [])]
        blob = {
            "version": self.version,
            "reads": _reads(cfg, self),
            "inputs": inputs,
            # upstream keys under their directories: the names every manifest written so far was keyed with
            "after": {a.dir: (a.read_manifest(cfg) or {}).get("key") for a in self.after},
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def read_manifest(self, cfg: Config) -> dict | None:
        path = self.path(cfg) / MANIFEST
        return json.loads(path.read_text()) if path.exists() else None

    def is_fresh(self, cfg: Config) -> bool:
        """Done before with this config and these inputs, and its outputs are all there."""
        manifest = self.read_manifest(cfg)
        if not manifest or manifest.get("key") != self.key(cfg) or not manifest.get("complete", True):
            return False
        return all((self.path(cfg) / o).exists() for o in self.writes)

    def built_by_older_code(self, cfg: Config) -> int | None:
        """The older `version` of this stage's code that wrote its outputs, when its manifest holds the key this
        config gives at that version (same config, same inputs, older code); else None (built by this code, from
        another config, or not built)."""
        manifest = self.read_manifest(cfg)
        if not manifest or manifest.get("key") == self.key(cfg):
            return None
        older = (v for v in range(self.version - 1, 0, -1) if replace(self, version=v).key(cfg) == manifest["key"])
        return next(older, None)

    def up_to_date(self, cfg: Config) -> bool:
        """Fresh, and its report jobs have written their reports: the pipeline skips it."""
        return self.is_fresh(cfg) and all((cfg.run_path / r).exists() for r in self.reports)

    def wanted(self, cfg: Config) -> bool:
        return self.needed is None or self.needed(cfg)

    def done(self, cfg: Config, force: bool = False) -> dict | None:
        """What `fit` returns when there is nothing to do (the manifest, `skipped`), else None: the first line of
        every `fit`."""
        if force or not self.is_fresh(cfg):
            return None
        log.info("%s: up to date in %s (key %s), skipped", self.name, self.path(cfg), self.key(cfg))
        return {**self.read_manifest(cfg), "skipped": True}

    def write_manifest(self, cfg: Config, **fields: Any) -> dict:
        """Write the stage's manifest (its key first) atomically; returns it."""
        manifest = {"stage": self.name, "key": self.key(cfg), "written": time.strftime("%Y-%m-%dT%H:%M:%S"), **fields}
        path = self.path(cfg) / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, path)
        return manifest


def file_hash(path: Path) -> str:
    """The content hash of a file (16 hex digits), remembered per path, size and modification time: every stage's
    key and every check of a run's data hash the same raw files again."""
    st = os.stat(path)
    return _content_hash(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _content_hash(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _reads(cfg: Config, stage: Stage) -> dict[str, Any]:
    d = cfg.to_dict()
    out: dict[str, Any] = {}
    excluded: dict[str, set[str]] = {}
    for spec in stage.reads:
        section, _, name = spec.partition(".")
        if name.startswith("-"):
            excluded.setdefault(section, set()).add(name[1:])
        else:
            out[spec] = d[section][name] if name else d[section]
    for section, names in excluded.items():
        out[section] = {k: v for k, v in d[section].items() if k not in names}
    return out
