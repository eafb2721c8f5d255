"""Fine-tuning the two chat-model stages, the generator (section 4.3.1: the reviews) and the conversation module (u_r:
ReDial's recommender turns), on the well-trodden path of LLM fine-tuning: transformers' `Trainer` inside Ray Train's
`TorchTrainer`, as Ray's own Llama fine-tuning examples run it (`ray.train.huggingface.transformers.prepare_trainer`
and `RayTrainReportCallback`).

From the Trainer come: PEFT LoRA (or full) fine-tuning, micro-batches accumulated to the global `batch_size`,
gradient checkpointing, bf16 on CUDA, the LR schedule (linear warm-up and decay over the whole run), gradient
clipping, DeepSpeed through `TrainingArguments.deepspeed` (its sharded checkpoints and resume; under ZeRO-3 the base
model is partitioned while it loads, `zero.Init`; otherwise each rank loads it straight onto its own device, never a
whole host copy per rank), and checkpoints that hold the adapter, the optimizer, the schedule, the RNG and the
position in the data. What this project adds: the content-keyed stage (`artifacts`), the checkpoints in the run
directory (Ray storage `<run_dir>/<stage>/ray`), rerun = resume from the latest checkpoint, `max_failures` restarts
after a lost worker, `stop_after_steps` (a long run in short resumable pieces), the memory check of `ecr_ray.plan`
before a GPU rank loads anything, progress lines with loss and throughput, and the manifest.

`fit` writes <run_dir>/<stage>/: examples.parquet (built by a Ray task), ray/ (the Ray Train run; each checkpoint
holds the Trainer's checkpoint folder under `checkpoint/`), adapter/ (PEFT) or model/ (full weights), manifest.json.
Nothing here imports Ray at module level: `benchmarks/gpu_check.py` runs this training code on a machine without Ray.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from .. import plan
from ..artifacts import Stage
from ..config import ChatTrainConfig, Config, config_from_dict
from ..hub import resolve
from ..reviews import build as reviews_build
from ..runtime import run_task
from ..train import STATE_FILE, TrainRun, fail_once, read_state
from ..train import fit as fit_run
from .data import EXAMPLES_FILE, build_examples, collate, encode, read_examples
from .model import ADAPTER_DIR, MODEL_DIR, with_lora

log = logging.getLogger(__name__)

HF_CHECKPOINT = "checkpoint"  # the Trainer's checkpoint folder inside a Ray checkpoint (RayTrainReportCallback)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TRAINER_ONLY = ("optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "zero_to_fp32.py", "latest")


# ----------------------------------------------------------------------------- what a rank trains on


class ChatExamples:
    """The stage's examples, tokenised: prompt + target ids, labels masking the prompt (`data.encode`). The Trainer's
    sampler deals them over the ranks and shuffles them each epoch (seeded)."""

    def __init__(self, examples: list[dict], tokenizer, max_length: int):
        self.rows = [encode(tokenizer, e["messages"], e["target"], max_length) for e in examples]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def collator(pad_id: int):
    """Right-padding to the longest example of the micro-batch (labels -100 there)."""
    return partial(collate, pad_id=pad_id)


# ----------------------------------------------------------------------------- the Trainer's settings


def deepspeed_settings(c: ChatTrainConfig) -> dict[str, Any] | None:
    """The recipe's DeepSpeed dict for transformers' integration: batch sizes, gradient clipping and bf16 left to
    `auto` (filled from TrainingArguments), so the two cannot disagree. None = no DeepSpeed."""
    if not c.deepspeed:
        return None
    ds = json.loads(json.dumps(c.deepspeed))  # a deep copy; the recipe's dict stays as written
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"):
        ds.setdefault(key, "auto")
    ds.setdefault("gradient_clipping", "auto")
    ds.setdefault("steps_per_print", 10**9)
    return ds


def training_arguments(c: ChatTrainConfig, output_dir: str, total_steps: int, device_type: str, seed: int):
    """transformers' TrainingArguments of a chat-model stage. Build them before the model: with ZeRO-3 in the
    DeepSpeed config they switch `from_pretrained` to partitioned loading (`zero.Init`)."""
    from transformers import TrainingArguments

    if c.deepspeed and device_type == "cpu":
        import deepspeed

        # DeepSpeed on CPU rehearses the GPU path: skip its ~2 min build of the shared-memory all-reduce op.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    return TrainingArguments(
        output_dir=output_dir,
        max_steps=total_steps,
        per_device_train_batch_size=c.micro_batch,
        gradient_accumulation_steps=c.accumulation,
        learning_rate=c.lr,
        weight_decay=c.weight_decay,
        warmup_steps=c.warmup_steps,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        optim="adamw_torch",
        bf16=c.bf16(device_type),
        activation_checkpointing=c.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},  # PEFT: no input-grad hook needed
        deepspeed=deepspeed_settings(c),
        use_cpu=device_type == "cpu",
        seed=seed,
        logging_steps=1,  # every step's loss into the trainer state (the manifest's loss curve)
        logging_strategy="steps",
        save_strategy="steps",
        save_steps=c.checkpoint_every,
        save_total_limit=1,  # local copies; Ray storage keeps its own (CheckpointConfig)
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
    )


def load_for_training(c: ChatTrainConfig, offline: bool, device, bf16: bool, zero3: bool):
    """(tokenizer, model to train) for a chat-model stage. Under ZeRO-3 the weights are partitioned over the ranks
    as they load (transformers' `zero.Init`, switched on by the TrainingArguments built before); otherwise they load
    straight onto this rank's `device` (`device_map`): no rank ever holds a whole extra copy on the host."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(c.base_model, offline)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.bfloat16 if bf16 else torch.float32
    if zero3:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map={"": str(device)})
    model.config.use_cache = False  # training: no KV cache (and none to checkpoint around)
    if getattr(c, "method", "lora") == "lora":
        model = with_lora(model, c)
    return tok, model


# ----------------------------------------------------------------------------- callbacks


def progress_callback(name: str, batch_size: int, every: int = 10, stop_after: int = 0, fault: dict | None = None):
    """A TrainerCallback: rank 0's progress line every `every` steps and at the end (loss, learning rate, samples/s and
    tokens/s of the global batch); the end of this invocation at `stop_after` and the run's last step, both saved
    first (always resumable); the test switch of `ECR_TRAIN_FAULT` (`step=N,once=<marker>`)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.t0, self.step0, self.tokens0 = time.perf_counter(), None, 0

        def on_step_begin(self, args, state, control, **kw):
            if self.step0 is None:
                self.step0, self.tokens0, self.t0 = state.global_step, state.num_input_tokens_seen, time.perf_counter()
            if fault and "step" in fault and state.global_step == int(fault["step"]):
                fail_once(fault, state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= state.max_steps or state.global_step == stop_after:
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            step = state.global_step
            if not state.is_world_process_zero or "loss" not in (logs or {}):
                return
            if step % every and step not in (state.max_steps, stop_after):
                return
            dt = max(time.perf_counter() - self.t0, 1e-9)
            log.info(
                "[%s] epoch %.2f step %d/%d loss %.4f lr %.2e %.1f samples/s %.0f tokens/s",
                name,
                logs.get("epoch", 0.0),
                step,
                state.max_steps,
                logs["loss"],
                logs.get("learning_rate", 0.0),
                (step - (self.step0 or 0)) * batch_size / dt,
                (state.num_input_tokens_seen - self.tokens0) / dt,
            )

    return Progress()


def _report_callback():
    """RayTrainReportCallback, after a barrier: every rank's part of a checkpoint (DeepSpeed shards, RNG states) is
    complete before any rank hands its folder to Ray, which merges the ranks' files into one checkpoint; the rank's
    older local copies go."""
    import torch.distributed as dist
    from ray.train.huggingface.transformers import RayTrainReportCallback

    class ReportCheckpoint(RayTrainReportCallback):
        def on_save(self, args, state, control, **kw):
            if dist.is_available() and dist.is_initialized():
                dist.barrier()
            super().on_save(args, state, control, **kw)
            for old in Path(args.output_dir).glob("checkpoint-*"):
                if old.name != f"checkpoint-{state.global_step}":
                    shutil.rmtree(old, ignore_errors=True)

    return ReportCheckpoint()


# ----------------------------------------------------------------------------- worker side


def train_chat_model(config: dict) -> None:
    """One Ray Train worker: check the GPU's memory against the plan, build the Trainer, resume from the run's latest
    checkpoint (if any), train to the end or to `stop_after_steps`, report checkpoints to Ray."""
    import ray.train
    import ray.train.torch
    import torch
    from ray.train.huggingface.transformers import prepare_trainer
    from transformers import Trainer, set_seed
    from transformers.trainer_callback import PrinterCallback

    logging.basicConfig(level=config.get("log_level", "INFO"), format="%(message)s")
    cfg = config_from_dict(config["cfg"])
    stage = config["section"]
    c: ChatTrainConfig = getattr(cfg, stage)
    ctx = ray.train.get_context()
    device = torch.device("cpu") if config.get("force_cpu") else ray.train.torch.get_device()
    if config.get("force_cpu"):
        # Ray Train names a worker's device to accelerate (ray/train/torch/config.py: ACCELERATE_TORCH_DEVICE=cuda:0
        # where the worker holds a GPU), and accelerate's PartialState takes it over TrainingArguments' use_cpu
        # (accelerate/state.py, PartialState.__init__): the Trainer would move the model to CUDA.
        os.environ["ACCELERATE_TORCH_DEVICE"] = "cpu"
    torch.set_num_threads(int(config.get("threads", 1)))
    if device.type == "cuda":  # before loading anything: a stage that cannot fit fails here, naming the field
        plan.check_gpu(cfg, stage, torch.cuda.get_device_properties(device).total_memory, torch.cuda.get_device_name())
    out = Path(tempfile.mkdtemp(prefix=f"ecr-{stage}-rank{ctx.get_world_rank()}-"))
    args = training_arguments(c, str(out), config["total_steps"], device.type, cfg.seed)
    set_seed(cfg.seed)  # before LoRA's random init: Trainer seeds only in __init__, after the model exists
    tok, model = load_for_training(c, cfg.offline, device, args.bf16, c.zero_stage == 3)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ChatExamples(read_examples(Path(config["examples"])), tok, c.max_length),
        data_collator=collator(tok.pad_token_id),
        processing_class=tok,
        callbacks=[
            progress_callback(stage, c.batch_size, stop_after=config["stop_after_steps"], fault=config.get("fault")),
            _report_callback(),
        ],
    )
    trainer.remove_callback(PrinterCallback)  # its dict per step; the progress line says it once per `every`
    trainer = prepare_trainer(trainer)
    checkpoint = ray.train.get_checkpoint()
    try:
        if checkpoint:
            with checkpoint.as_directory() as d:
                log.info("[%s] resuming from %s", stage, d)
                trainer.train(resume_from_checkpoint=str(Path(d) / HF_CHECKPOINT))
        else:
            trainer.train()
    finally:
        shutil.rmtree(out, ignore_errors=True)


# ----------------------------------------------------------------------------- driver side


def fit(cfg: Config, *, force: bool = False, run_name: str | None = None, stop_after_steps: int = 0) -> dict:
    """Examples (Ray task) → Ray Train → `<run_dir>/generator/{adapter|model}` + manifest (returned). Skipped when a
    complete run with this config exists (unless `force`). Ray must be initialised."""
    return fit_chat_model(cfg, STAGE, build_examples, force=force, run_name=run_name, stop_after_steps=stop_after_steps)


def fit_chat_model(
    cfg: Config,
    stage: Stage,
    build_examples,
    *,
    force: bool = False,
    run_name: str | None = None,
    stop_after_steps: int = 0,
) -> dict:
    """The shared fit of the two chat-model stages (`generator`, `conversation`: its config section and its directory
    under the run dir): `build_examples(cfg, path)` in a Ray task → `train_chat_model` on Ray Train → the adapter (or
    full weights) + manifest. `run_name` (default: keyed by the config) resumes from its latest checkpoint;
    `stop_after_steps` ends this call after that many steps in all (resume later with the same run name)."""
    c: ChatTrainConfig = getattr(cfg, stage.section)
    if done := stage.done(cfg, force):
        return done
    plan.check_stage(cfg, stage.section)  # against the cluster's node types, when their configs are at hand
    t0 = time.perf_counter()
    out = stage.path(cfg)
    key = stage.key(cfg)
    examples = out / EXAMPLES_FILE
    counts = run_task(build_examples, c.eval_resources, cfg.with_absolute_paths(), examples)
    total = c.max_steps or c.epochs * max(counts["examples"] // c.batch_size, 1)
    name = run_name or f"{stage.name}-{key}"
    if force:
        shutil.rmtree(out / "ray" / name, ignore_errors=True)
    result, checkpoint = fit_run(
        TrainRun(
            task="",
            loop=train_chat_model,
            name=name,
            storage=out / "ray",
            resources=c.train_resources,
            max_failures=c.max_failures,
            force_cpu=cfg.force_cpu,
            marker=f"{HF_CHECKPOINT}/{STATE_FILE}",
            config={
                "cfg": cfg.with_absolute_paths().to_dict(),
                "section": stage.section,
                "examples": str(examples),
                "total_steps": total,
                "stop_after_steps": stop_after_steps,
            },
        )
    )
    state = read_state(checkpoint, HF_CHECKPOINT)
    lora = getattr(c, "method", "lora") == "lora"
    dest = out / (ADAPTER_DIR if lora else MODEL_DIR)
    shutil.rmtree(dest, ignore_errors=True)
    with checkpoint.as_directory() as d:
        export_weights(Path(d) / HF_CHECKPOINT, dest, lora)
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    tokens = state.get("num_input_tokens_seen", 0)
    return stage.write_manifest(
        cfg,
        complete=state["global_step"] >= total,
        method=getattr(c, "method", "lora"),
        base_model=c.base_model,
        run_name=name,
        **counts,
        steps=state["global_step"],
        total_steps=total,
        batch_size=c.batch_size,
        micro_batch_size=c.micro_batch,
        accumulation=c.accumulation,
        workers=c.train_resources.workers,
        gradient_checkpointing=c.gradient_checkpointing,
        zero_stage=c.zero_stage,
        max_length=c.max_length,
        lora_targets=c.lora_targets,
        tokens_trained=tokens,
        loss_first10=round(sum(losses[:10]) / max(len(losses[:10]), 1), 4),
        loss_last10=round(sum(losses[-10:]) / max(len(losses[-10:]), 1), 4),
        losses=losses,
        fit_seconds=round(time.perf_counter() - t0, 1),
        metrics=result.metrics,
    )


def export_weights(src: Path, dest: Path, lora: bool) -> None:
    """The trained weights of a Trainer checkpoint folder into `dest`: the PEFT adapter, or the full model with its
    tokenizer (without the optimizer, the schedule, the RNG states and DeepSpeed's shards)."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if lora and f.name not in ADAPTER_FILES:
            continue
        if f.is_dir() or f.name in TRAINER_ONLY or f.name.startswith("rng_state"):
            continue
        shutil.copy2(f, dest / f.name)
    missing = [f for f in ADAPTER_FILES if lora and not (dest / f).exists()]
    if missing:
        raise RuntimeError(f"{src}: the checkpoint holds no {missing}")


INFERENCE = (
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
"""generator fields that change how it is used, not what it learns: not in the stage's key."""
TRAINING_RUNTIME = ("micro_batch_size", "gradient_checkpointing", "max_failures")
"""How a chat-model stage fits its GPUs and survives failures, not what it learns: changing them resumes the same
run."""

STAGE = Stage(
    "generator",
    "generator",
    "generator",
    reads=(*(f"generator.-{f}" for f in INFERENCE + TRAINING_RUNTIME), "seed"),
    writes=("manifest.json",),
    fit=fit,
    jobs=("train_generator", "evaluate_generator"),
    resources={
        "train_generator": ("generator.train_resources", "generator.eval_resources"),
        "evaluate_generator": ("generator.eval_resources", "emotion.label_resources"),
    },
    after=(reviews_build.STAGE,),
    reports=("eval/generator/metrics.json",),
)
