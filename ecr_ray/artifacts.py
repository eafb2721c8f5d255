"""Stage outputs in the run directory: what each stage reads, its content key, its manifest, and whether it is up to
date.

Every stage writes `<run_dir>/<stage dir>/manifest.json` holding its `key`: a hash of the stage's version, of the
config fields the stage reads, of the files it reads from outside the run directory (raw data, seed labels, reviews)
and of the keys of the stages it reads from. A stage is up to date when its manifest holds the key the current config
gives and its outputs exist. `pipeline` asks `is_fresh` before running a stage, and each stage's `fit` asks it too
before doing work again, so a rerun of anything skips what is done and resumes what is not.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .data.sources import Sources

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Stage:
    name: str
    dir: str
    """Where the stage writes, under run_dir; `{variant}` stands for the recommender's name (recommender.variant, with
    `+copy` when recommender.copy_mentioned)."""
    reads: tuple[str, ...]
    """Config fields the output depends on: "section" (all of it), "section.field", or "section.-field" to take a
    whole section but that field (resources and inference-only settings never force a retrain)."""
    after: tuple[str, ...] = ()
    """Stages whose outputs this one reads."""
    outputs: tuple[str, ...] = ()
    """Files under the stage's dir that must exist for it to count as done."""
    inputs: Callable[[Config], list[Path]] | None = None
    """Files outside the run directory the stage reads (hashed into the key)."""
    version: int = 1
    """Bumped when the code changes what the stage writes from the same config and inputs, so older outputs rebuild
    (tables 2: movie titles written out are linked as movie mentions; recommender 2: mention ages and the `new`
    protocol's flags in the prepared tensors and test predictions, UniCRS's pre-training samples)."""

    def path(self, cfg: Config) -> Path:
        return cfg.run_path / self.dir.format(variant=cfg.recommender.name)


def _raw_files(cfg: Config) -> list[Path]:
    return Sources.of(cfg.data.resolved_dir(), cfg.data.dataset).files()


def _seed_labels(cfg: Config) -> list[Path]:
    return [cfg.emotion.seed_path(cfg.data.resolved_dir())]


def _reviews_file(cfg: Config) -> list[Path]:
    return [cfg.generator.reviews_path(cfg.data.resolved_dir())]


_INFERENCE = (
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "repetition_penalty",
    "knowledge_bonus",
    "reply_guard",
    "guard_retries",
    "dtype",
    "compile",
    "max_cache_len",
    "compile_batch_sizes",
    "eval_samples",
    "eval_batch_size",
    "eval_resources",
    "link_resources",
    "engine",  # serving: switching to vLLM merges the adapter (the `merge` stage), it never retrains
    "vllm",
)
_CONVERSATION_INFERENCE = (
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "repetition_penalty",
    "device",
    "dtype",
    "eval_resources",
)
# How a chat-model stage fits its GPUs and survives failures, not what it learns: changing them resumes the same run.
_CHAT_TRAINING_RUNTIME = ("micro_batch_size", "gradient_checkpointing", "max_failures")
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("tables", "tables", ("data", "seed"), (), ("turns.parquet", "samples.parquet"), _raw_files, version=2),
        Stage(
            "emotions",
            "emotions",
            (
                "emotion.-llm_base_url",
                "emotion.-llm_model",
                "emotion.-llm_resources",
                "emotion.-label_resources",
                "emotion.-train_resources",
                "emotion.-label_batch_size",
                "seed",
            ),
            ("tables",),
            ("turn_emotions.parquet", "entity_emotions.parquet"),
            _seed_labels,
        ),
        Stage(
            "reviews",
            "reviews",
            (
                "generator.reviews_file",
                "generator.review_filter",
                "generator.min_entity_mentions",
                "generator.review_entity_filter",
                "generator.review_entity_min_global",
                "generator.review_entity_max_movies",
                "generator.review_entity_min_name_chars",
                "data.skip_invalid",
            ),
            ("tables",),
            ("reviews.parquet", "movie_knowledge.parquet"),
            _reviews_file,
        ),
        Stage(
            "recommender",
            "recommender/{variant}",
            (
                "recommender.-train_resources",
                "recommender.-encode_resources",
                "recommender.-cache_dir",
                "recommender.-max_failures",
                "emotion.threshold",
                "emotion.max_emotions_per_entity",
                "seed",
            ),
            ("tables", "emotions"),
            ("model.pt", "metrics.json"),
            version=2,
        ),
        Stage(
            "generator",
            "generator",
            tuple(f"generator.-{f}" for f in _INFERENCE + _CHAT_TRAINING_RUNTIME) + ("seed",),
            ("reviews",),
            ("manifest.json",),
        ),
        Stage(  # the LoRA adapter merged into the base model, what vLLM loads (ecr_ray/generator/merge.py)
            "merge",
            "generator/merged",
            ("generator.dtype",),
            ("generator",),
            ("config.json",),
        ),
        Stage(
            "conversation",
            "conversation",
            tuple(f"conversation.-{f}" for f in _CONVERSATION_INFERENCE + _CHAT_TRAINING_RUNTIME) + ("seed",),
            ("tables",),
            ("manifest.json",),
        ),
    )
}


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


def key(cfg: Config, name: str) -> str:
    """The content key the current config gives stage `name` (upstream stages by the keys in their manifests)."""
    stage = STAGES[name]
    # By content, not by path: the same data under another folder (a job's working dir) is the same input.
    inputs = [(p.name, file_hash(p) if p.exists() else None) for p in (stage.inputs(cfg) if stage.inputs else [])]
    blob = {
        "version": stage.version,
        "reads": _reads(cfg, stage),
        "inputs": inputs,
        "after": {a: (read_manifest(cfg, a) or {}).get("key") for a in stage.after},
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_manifest(cfg: Config, name: str) -> dict | None:
    path = STAGES[name].path(cfg) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def is_fresh(cfg: Config, name: str) -> bool:
    """Done before with this config and these inputs, and its outputs are all there."""
    stage, manifest = STAGES[name], read_manifest(cfg, name)
    if not manifest or manifest.get("key") != key(cfg, name) or not manifest.get("complete", True):
        return False
    return all((stage.path(cfg) / o).exists() for o in stage.outputs)


def write_manifest(cfg: Config, name: str, **fields: Any) -> dict:
    """Write the stage's manifest (its key first) atomically; returns it."""
    manifest = {"stage": name, "key": key(cfg, name), "written": time.strftime("%Y-%m-%dT%H:%M:%S"), **fields}
    path = STAGES[name].path(cfg) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(tmp, path)
    return manifest
