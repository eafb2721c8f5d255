"""Typed configuration: dataclasses with documented fields, loaded from YAML recipes, overridable from the CLI.

One `Config` holds one section per concern (data, emotion, recommender, generator, conversation, tune, serve), each
a dataclass in a module of its own in this package (`data.py`, `emotion.py`, `recommender.py`, `chat.py` for the two
chat-model sections, which share their fine-tuning fields, `tune.py`, `serve.py`; `base.py` holds what they share,
`Resources` among it); this module composes them and loads recipes. A recipe
(`recipes/<name>.yaml`) is a complete, reproducible setting; the command line overrides single fields with
`--section.field value` (or `--section.field=value`). Precedence: CLI > environment (`ECR_DATA_DIR`,
`ECR_RUN_DIR`, `ECR_NODE_TYPES`) > recipe > defaults below.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from .base import (
    EMOTIONS,
    KNOWLEDGE_FORMATS,
    PACKAGE_DIR,
    PROJECT_ROOT,
    RECIPES_DIR,
    SAMPLE_DATA_DIR,
    STRICT,
    ConfigError,
    Resources,
    _check,
)
from .chat import ChatTrainConfig, ConversationConfig, GeneratorConfig
from .data import DataConfig
from .emotion import EmotionConfig
from .recommender import RECOMMENDER_BACKBONES, RECOMMENDER_VARIANTS, SELECT_BY, RecommenderConfig
from .serve import ServeConfig
from .tune import TuneConfig

__all__ = [
    "EMOTIONS",
    "KNOWLEDGE_FORMATS",
    "PACKAGE_DIR",
    "PROJECT_ROOT",
    "RECIPES_DIR",
    "RECOMMENDER_BACKBONES",
    "RECOMMENDER_VARIANTS",
    "SAMPLE_DATA_DIR",
    "SELECT_BY",
    "ChatTrainConfig",
    "Config",
    "ConfigError",
    "ConversationConfig",
    "DataConfig",
    "EmotionConfig",
    "GeneratorConfig",
    "RecommenderConfig",
    "Resources",
    "ServeConfig",
    "TuneConfig",
    "add_config_args",
    "config_from_args",
    "config_from_dict",
    "load_config",
    "parse_overrides",
    "recipe_path",
    "section_from_dict",
]


@dataclass
class Config:
    """A whole ecr-ray setting: one recipe."""

    __pydantic_config__ = STRICT

    recipe: str = "demo"
    """Name of the recipe this config came from."""
    run_dir: str = "runs/demo"
    """Where every stage writes its artifacts (local path or shared storage on a cluster)."""
    seed: int = 42
    offline: bool = False
    """Load hub models only from the Hugging Face cache (HF_HOME), never downloading at run time; `ecr-ray
    fetch_models` fills it. HF_HUB_OFFLINE=1 does the same."""
    force_cpu: bool = False
    """Compute on the CPU everywhere, even in Ray work that reserves GPUs: every section's `device` becomes `cpu`
    and Ray Train workers holding a GPU train on the CPU over gloo. The resource requests stay as written, so a GPU
    recipe's shape (which node types the autoscaler launches, where each piece runs) can be rehearsed on nodes whose
    GPUs are logical only (docs/cluster.md, "Autoscaling, rehearsed"). Not for real GPUs: they sit idle."""
    node_types: str = ""
    """The cluster config whose node types every job's Ray work must fit: a Ray cluster launcher YAML
    (`available_node_types`, e.g. cluster/aws.yaml) or a KubeRay RayCluster / RayJob / RayService YAML
    (`workerGroupSpecs`). Each job checks its resource requests against them before it starts work and fails at once,
    naming the stage, the request and the node types, when none can hold a piece (instead of waiting forever for an
    autoscaler that has no such node). Empty: `~/ray_bootstrap_config.yaml` where it exists (the head of a `ray up`
    cluster, where job drivers run), else the nodes of a Ray instance the job started itself; on another cluster the
    requests are not checked. Environment: ECR_NODE_TYPES."""
    data: DataConfig = field(default_factory=DataConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    recommender: RecommenderConfig = field(default_factory=RecommenderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    DEVICE_SECTIONS = ("emotion", "recommender", "generator", "conversation")
    """The sections with a `device` (and `dtype`)."""

    def __post_init__(self) -> None:
        if not self.force_cpu:
            return
        for name in self.DEVICE_SECTIONS:
            section = getattr(self, name)
            _check(section.device != "cuda", f"{name}.device: cuda contradicts force_cpu: true")
            section.device = "cpu"
        _check(
            self.generator.engine != "vllm", "generator.engine: vllm needs real GPUs, which force_cpu: true leaves idle"
        )

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir).expanduser().resolve()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_absolute_paths(self) -> Config:
        """A copy whose run and data directories no longer depend on the working directory (Ray tasks, Tune trials
        and Serve replicas run elsewhere)."""
        cfg = copy.deepcopy(self)
        cfg.run_dir = str(self.run_path)
        if self.data.data_dir != "sample":
            cfg.data.data_dir = str(self.data.resolved_dir())
        return cfg

    def section_hash(self, *sections: str) -> str:
        """Content hash of the named sections (what a stage's output depends on)."""
        d = self.to_dict()
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading

_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "string": "a string",
    "list": "a list",
    "dict": "a mapping",
    "dataclass": "a mapping",
}


def _build(raw: dict[str, Any]) -> Config:
    """Validate a raw dict (recipe + environment + overrides) into a Config; the first problem becomes one
    ConfigError naming the dotted field, e.g. `recommender.epochs: expected an integer, got 'many'`."""
    try:
        return TypeAdapter(Config).validate_python(raw)
    except ValidationError as e:
        raise _config_error(e, Config) from None


def _config_error(e: ValidationError, root: type) -> ConfigError:
    errors = e.errors(include_url=False)
    unknown = [err for err in errors if err["type"] in ("unexpected_keyword_argument", "extra_forbidden")]
    if unknown:  # all unknown fields of the first section that has any, with the fields it knows
        parent = unknown[0]["loc"][:-1]
        names = sorted(str(err["loc"][-1]) for err in unknown if err["loc"][:-1] == parent)
        known = sorted(f.name for f in dataclasses.fields(_section_type(root, parent)))
        return ConfigError(f"{_dotted(parent) or 'config'}: unknown field(s) {names}; known: {known}")
    err = errors[0]
    where = _dotted(err["loc"])
    if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), ConfigError):
        msg = str(err["ctx"]["error"])  # a __post_init__ check: its message names the field already, or a subfield
        return ConfigError(msg if not where or msg.startswith(where) else f"{where}.{msg}")
    kind = err["type"].split("_")[0]
    expected = _EXPECTED.get(kind)
    if expected:
        return ConfigError(f"{where}: expected {expected}, got {err.get('input')!r}")
    return ConfigError(f"{where}: {err['msg']}")


def _dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _section_type(root: type, loc: tuple) -> type:
    """The dataclass at a field path below `root` (for listing its known fields)."""
    tp: Any = root
    for name in loc:
        tp = {f.name: f.type for f in dataclasses.fields(tp)}[name]
        tp = globals()[tp] if isinstance(tp, str) else tp
    return tp


def recipe_path(recipe: str) -> Path:
    p = Path(recipe)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    p = RECIPES_DIR / f"{recipe}.yaml"
    if not p.exists():
        known = sorted(x.stem for x in RECIPES_DIR.glob("*.yaml"))
        raise ConfigError(f"recipe {recipe!r} not found (looked for {p}); known recipes: {known}")
    return p


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
        if not isinstance(d, dict):
            raise ConfigError(f"--{dotted}: {k} is not a section")
    d[keys[-1]] = value


def load_config(recipe: str = "demo", overrides: dict[str, Any] | None = None) -> Config:
    """Recipe YAML (+ `extends:` parent) → environment → dotted overrides → validated `Config`."""
    path = recipe_path(recipe)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = raw.pop("extends", None)
    if parent:
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: extends: expected a recipe name or YAML path, got {parent!r}")
        try:
            base = yaml.safe_load(recipe_path(parent).read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: extends {parent!r}: invalid YAML: {e}") from None
        if not isinstance(base, dict):
            raise ConfigError(f"{path}: extends {parent!r}: top level must be a mapping")
        base.pop("extends", None)
        raw = _deep_merge(base, raw)
    raw.setdefault("recipe", path.stem)
    if os.environ.get("ECR_DATA_DIR"):
        _set_dotted(raw, "data.data_dir", os.environ["ECR_DATA_DIR"])
    if os.environ.get("ECR_RUN_DIR"):
        raw["run_dir"] = os.environ["ECR_RUN_DIR"]
    if os.environ.get("ECR_NODE_TYPES"):
        raw["node_types"] = os.environ["ECR_NODE_TYPES"]
    for k, v in (overrides or {}).items():
        _set_dotted(raw, k, v)
    return _build(raw)


def section_from_dict(cls: type, d: dict[str, Any], where: str) -> Any:
    """One config section (e.g. RecommenderConfig) from a saved dict, validated; errors name `where`."""
    try:
        return TypeAdapter(cls).validate_python(d)
    except ValidationError as e:
        raise ConfigError(f"{where}: {_config_error(e, cls)}") from None


def config_from_dict(d: dict[str, Any]) -> Config:
    """Rebuild (and re-validate) a Config from `Config.to_dict()` output, e.g. inside a Ray task."""
    return _build(d)


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="demo", help="recipe name in recipes/ or a YAML path (default: demo)")
    parser.add_argument("--data-dir", help="raw data directory (overrides recipe and ECR_DATA_DIR)")
    parser.add_argument("--run-dir", help="run directory for all artifacts (overrides recipe and ECR_RUN_DIR)")
    parser.add_argument("--skip-invalid", action="store_true", help="skip and report malformed input rows")


def parse_overrides(extra: list[str]) -> dict[str, Any]:
    """`--section.field value` / `--section.field=value` pairs → {"section.field": parsed YAML value}."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise ConfigError(f"unexpected argument {tok!r}; overrides look like --section.field value")
        key = tok[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(extra):
                raise ConfigError(f"--{key}: missing value")
            text = extra[i + 1]
            i += 2
        key = key.replace("-", "_")
        try:
            out[key] = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError:
            out[key] = text
    return out


def config_from_args(args: argparse.Namespace, extra: list[str]) -> Config:
    overrides = parse_overrides(extra)
    if getattr(args, "data_dir", None):
        overrides["data.data_dir"] = args.data_dir
    if getattr(args, "run_dir", None):
        overrides["run_dir"] = args.run_dir
    if getattr(args, "skip_invalid", False):
        overrides["data.skip_invalid"] = True
    return load_config(args.recipe, overrides)
