"""Fine-tuning the generator on the emotional reviews: its Train-skeleton task (LoRA or full, plain PyTorch / DDP or
DeepSpeed ZeRO-3) and the stage as a whole (`fit`).

`fit` writes <run_dir>/generator/: examples.parquet (built by a Ray task), ray/ (the Ray Train run and its
checkpoints), adapter/ (PEFT) or model/ (full weights), manifest.json. The same run name resumes from the latest
checkpoint (optimizer and LR schedule included); `stop_after_steps` ends an invocation early so that a long run can
go in short resumable pieces.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from pathlib import Path

from .. import artifacts
from ..config import Config, config_from_dict
from ..train import LoopSettings, Task, TrainRun, copy_model, precision_of, read_state
from ..train import fit as fit_run
from .data import EXAMPLES_FILE, collate, encode, read_examples
from .model import ADAPTER_DIR, MODEL_DIR, with_lora

log = logging.getLogger(__name__)


def _unwrap(model):
    """The PEFT / transformers model inside DDP or a DeepSpeed engine."""
    while hasattr(model, "module") and not hasattr(model, "peft_config"):
        model = model.module
    return model


class GeneratorTask(Task):
    """Causal-LM loss on the review tokens. Rank r trains on examples r, r + world, ...; each epoch they are
    shuffled (seeded by the epoch) and taken `batch_size` at a time, wrapping around at the end."""

    name = "generator"

    def __init__(self, config: dict, worker):
        from ..hub import load_chat_model

        super().__init__(config, worker)
        self.cfg = config_from_dict(config["cfg"])
        self.name = config.get("section", "generator")  # or the conversation module's, on its own data
        self.g = getattr(self.cfg, self.name)
        # bf16 weights under DeepSpeed's bf16, or on CUDA unless dtype float32 (LoRA adapters stay fp32: PEFT)
        bf16 = config["deepspeed_bf16"] or (worker.device.type == "cuda" and self.g.dtype != "float32")
        self.tok, self.base = load_chat_model(self.g.base_model, "bfloat16" if bf16 else None, "cpu", self.cfg.offline)
        examples = read_examples(Path(config["examples"]))[worker.rank :: worker.world]
        self.data = [encode(self.tok, e["messages"], e["target"], self.g.max_length) for e in examples]
        self.per_epoch = max(config["n_examples"] // (self.g.batch_size * worker.world), 1)

    def model(self):
        self.base.config.use_cache = False
        model = with_lora(self.base, self.g) if self.g.method == "lora" else self.base
        model.train()
        return model

    def steps_per_epoch(self) -> int:
        return self.per_epoch

    def batches(self, epoch: int):
        order = list(range(len(self.data)))
        random.Random(f"{self.cfg.seed}:{epoch}").shuffle(order)
        bs = self.g.batch_size
        for pos in range(self.per_epoch):
            rows = [self.data[order[(pos * bs + j) % len(self.data)]] for j in range(bs)]
            yield {k: v.to(self.worker.device) for k, v in collate(rows, self.tok.pad_token_id).items()}

    def batch_size(self, batch) -> int:
        return len(batch["input_ids"])

    def loss(self, model, batch):
        return model(**batch).loss

    def export(self, model, out: Path) -> None:
        inner = _unwrap(model)
        if self.g.method == "lora":
            inner.save_pretrained(out / ADAPTER_DIR)
        else:
            inner.save_pretrained(out / MODEL_DIR)
            self.tok.save_pretrained(out / MODEL_DIR)

    def restore(self, model, src: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        if self.g.method == "lora":
            set_peft_model_state_dict(model, load_file(str(src / ADAPTER_DIR / "adapter_model.safetensors")))
        else:
            import transformers

            model.load_state_dict(transformers.AutoModelForCausalLM.from_pretrained(src / MODEL_DIR).state_dict())


def fit(cfg: Config, run_name: str | None = None, stop_after_steps: int = 0, force: bool = False) -> dict:
    """Examples (Ray task) → Ray Train → `<run_dir>/generator/{adapter|model}` + manifest (returned). Skipped when a
    complete run with this config exists (unless `force`). Ray must be initialised."""
    from .data import build_examples

    return fit_chat_model(cfg, "generator", build_examples, run_name, stop_after_steps, force)


def fit_chat_model(
    cfg: Config, stage: str, build_examples, run_name: str | None = None, stop_after_steps: int = 0, force: bool = False
) -> dict:
    """The shared fit of the two chat-model stages (`generator`, `conversation`: the config section and the
    directory under the run dir): `build_examples(cfg, path)` in a Ray task → `GeneratorTask` in Ray Train → the
    adapter (or full weights) + manifest."""
    from ..runtime import run_task

    g = getattr(cfg, stage)
    if not force and artifacts.is_fresh(cfg, stage):
        log.info("%s: up to date (key %s), skipped", stage, artifacts.key(cfg, stage))
        return {**artifacts.read_manifest(cfg, stage), "skipped": True}
    t0 = time.perf_counter()
    out = cfg.run_path / stage
    key = artifacts.key(cfg, stage)
    examples = out / EXAMPLES_FILE
    counts = run_task(build_examples, g.eval_resources, cfg.with_absolute_paths(), examples)
    workers = g.train_resources.workers
    total = g.max_steps or g.epochs * max(counts["examples"] // (g.batch_size * workers), 1)
    name = run_name or f"{stage}-{key}"
    if force:
        shutil.rmtree(out / "ray" / name, ignore_errors=True)
    run = TrainRun(
        task="ecr_ray.generator.train:GeneratorTask",
        name=name,
        storage=out / "ray",
        resources=g.train_resources,
        force_cpu=cfg.force_cpu,
        settings=LoopSettings(
            precision=precision_of(g.dtype),
            lr=g.lr,
            weight_decay=g.weight_decay,
            epochs=g.epochs,
            max_steps=g.max_steps,
            warmup_steps=g.warmup_steps,
            checkpoint_every=g.checkpoint_every,
            log_every=10,
            stop_after_steps=stop_after_steps,
            deepspeed=g.deepspeed,
            micro_batch=g.batch_size,
        ),
        config={
            "cfg": cfg.with_absolute_paths().to_dict(),
            "section": stage,
            "seed": cfg.seed,
            "examples": str(examples),
            "n_examples": counts["examples"],
            "deepspeed_bf16": bool(g.deepspeed.get("bf16", {}).get("enabled")),
        },
    )
    result, checkpoint = fit_run(run)
    state = read_state(checkpoint)
    shutil.rmtree(out / (ADAPTER_DIR if g.method == "lora" else MODEL_DIR), ignore_errors=True)
    copy_model(checkpoint, out)
    if getattr(g, "engine", "") == "vllm" and g.method == "lora" and state["step"] >= total:  # vLLM: plain weights
        from .model import merge_adapter

        run_task(merge_adapter, g.eval_resources, cfg.with_absolute_paths())
    losses = state["losses"]
    return artifacts.write_manifest(
        cfg,
        stage,
        complete=state["step"] >= total,
        method=g.method,
        base_model=g.base_model,
        run_name=name,
        **counts,
        steps=state["step"],
        total_steps=total,
        batch_size=g.batch_size,
        workers=workers,
        max_length=g.max_length,
        lora_targets=g.lora_targets,
        loss_first10=round(sum(losses[:10]) / max(len(losses[:10]), 1), 4),
        loss_last10=round(sum(losses[-10:]) / max(len(losses[-10:]), 1), 4),
        losses=losses,
        fit_seconds=round(time.perf_counter() - t0, 1),
        metrics=result.metrics,
    )
