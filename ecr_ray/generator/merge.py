"""The merge step: the generator's LoRA adapter merged into its base model, the plain weights vLLM loads
(`generator.engine: vllm`). A stage of its own (`ecr-ray merge`, the pipeline's `merge` step with engine vllm), keyed by
the trained adapter and the dtype it is written in: switching the serving engine merges once and never retrains.

Writes `<run_dir>/generator/merged/` (weights, tokenizer, manifest.json); runs as a Ray task with
`generator.eval_resources` (the base model in bf16 is loaded on that task's host: ~14 GB for Llama-2-7b).
"""

from __future__ import annotations

import contextlib
import logging
import time

from ..artifacts import Stage
from ..config import Config, ConfigError
from ..runtime import run_task
from . import train
from .model import ADAPTER_DIR, merge_adapter

log = logging.getLogger(__name__)


def fit(cfg: Config, *, force: bool = False, ray=contextlib.nullcontext) -> dict:
    """Merge the run's adapter (skipped when the merged weights are up to date, unless `force`); the manifest.
    `ray()`: the context in which Ray is initialised for the merge (a job's `ray_for`), entered only to merge."""
    g = cfg.generator
    if g.method != "lora":
        raise ConfigError(
            f"generator.method is {g.method!r}: full fine-tuning writes plain weights (generator/model), which vLLM "
            "loads as they are; there is no adapter to merge"
        )
    trained = train.STAGE.read_manifest(cfg)
    adapter = cfg.run_path / "generator" / ADAPTER_DIR
    if not trained or not trained.get("complete", True) or not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(
            f"{adapter}: no complete trained adapter to merge: train the generator first "
            f"(`ecr-ray train_generator --recipe {cfg.recipe}`)"
        )
    if done := STAGE.done(cfg, force):
        return done
    t0 = time.perf_counter()
    with ray():
        path = run_task(merge_adapter, g.eval_resources, cfg.with_absolute_paths())
    log.info("merge: %s written", path)
    return STAGE.write_manifest(
        cfg,
        adapter_key=trained["key"],
        base_model=g.base_model,
        dtype="float32" if g.dtype == "float32" else "bfloat16",
        path=path,
        seconds=round(time.perf_counter() - t0, 1),
    )


def serves_merged(cfg: Config) -> bool:
    """`generator.engine: vllm` with a LoRA generator: vLLM loads the merged weights."""
    return cfg.generator.engine == "vllm" and cfg.generator.method == "lora"


STAGE = Stage(
    "merge",
    "generator",
    "generator/merged",
    reads=("generator.dtype",),
    writes=("config.json",),
    fit=fit,
    jobs=("merge",),
    resources={"merge": ("generator.eval_resources",)},
    after=(train.STAGE,),
    needed=serves_merged,
)
