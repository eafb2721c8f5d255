"""The one Ray Train skeleton behind the project's own trainers (emotion classifier, recommender). The chat-model
stages (generator, conversation module) run transformers' Trainer on the same driver side (`fit`, `TrainRun.loop`;
`generator/train.py`).

A stage supplies a `Task`: its model, its batches, its loss, and optionally a validation pass and how to write its
weights. The skeleton does everything else the same way for all of them:

    seeding · device · DDP or DeepSpeed (ZeRO 1/2/3) · one LR schedule (linear warm-up, linear decay) · gradient
    clipping · checkpoints holding the weights, the optimizer and the scheduler (DeepSpeed's sharded state included)
    · resume from the latest checkpoint · best-model selection on a validation metric · metric reports · a progress
    line per epoch and every `log_every` steps with loss and throughput

Driver side, `fit(TrainRun(...))` builds the `TorchTrainer` from the stage's `Resources` and returns the final
checkpoint. Worker side, Ray calls `train_loop(config)`; `config` is small and JSON-like (settings, paths, the
stage's config section): data reach the workers through `datasets=` (`ray.train.get_dataset_shard`) or by path on
shared storage, never inside the config.

Rerunning a run with the same name resumes it from its latest checkpoint (Ray Train's `get_checkpoint`), so a run
can also be cut into pieces with `stop_after_steps`. Tests inject one failure through the `ECR_TRAIN_FAULT`
environment variable of the driver (`epoch=N` or `step=N`, with `once=<marker file>`): no test parameter travels
through the stages' signatures.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"  # step, epoch, history, best: JSON, so resuming unpickles nothing
OPTIM_FILE = "optim.pt"  # optimizer + scheduler state dicts (tensors and numbers: weights_only loads)
MODEL_DIR, BEST_DIR, DEEPSPEED_DIR = "model", "best", "deepspeed"
FAULT_ENV = "ECR_TRAIN_FAULT"


@dataclass
class LoopSettings:
    """How a stage wants to be optimised; filled from its config section by the stage's `fit`."""

    lr: float
    weight_decay: float = 0.0
    epochs: int = 1
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = `epochs` full epochs)."""
    warmup_steps: int = 0
    warmup_fraction: float = 0.0
    """Warm-up length as a share of all steps, used when `warmup_steps` is 0."""
    grad_clip: float = 1.0
    """Clip the gradient norm at this value (0 = no clipping)."""
    checkpoint_every: int = 0
    """Checkpoint every this many steps; 0 = at the end of every epoch."""
    log_every: int = 10
    """A progress line (and a metric report) every this many steps, besides the epoch ends."""
    stop_after_steps: int = 0
    """End this invocation after this many steps in all (0 = run to the end); rerun the same run name to go on.
    The LR schedule still spans the whole run."""
    deepspeed: dict[str, Any] = field(default_factory=dict)
    """DeepSpeed config (empty = plain PyTorch, DDP when there are several workers)."""
    micro_batch: int = 1
    """Examples per worker per step (DeepSpeed's `train_micro_batch_size_per_gpu`)."""
    precision: str = "fp32"
    """`fp32` or `bf16`: autocast to bf16 when the worker is on CUDA (CPU training stays fp32; DeepSpeed takes its
    own `bf16` section). `precision_of(stage dtype)` gives it."""
    select: tuple[str, str] | None = None
    """(metric, "min" | "max"): keep the best model by this validation metric beside the latest one."""

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.max_steps or self.epochs * steps_per_epoch

    def warmup(self, total: int) -> int:
        return self.warmup_steps or int(self.warmup_fraction * total)


def precision_of(dtype: str) -> str:
    """A stage's `dtype` (auto | float32 | bfloat16) → LoopSettings.precision: bf16 unless float32."""
    return "fp32" if dtype == "float32" else "bf16"


def warmup_linear(total: int, warmup: int):
    """The LR multiplier of every trainer: linear warm-up over `warmup` steps, then linear decay to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(total - warmup, 1))

    return factor


def deepspeed_config(user: dict[str, Any], micro_batch: int, world: int, grad_clip: float = 1.0) -> dict[str, Any]:
    """The recipe's DeepSpeed dict with batch sizes derived from ours and the defaults that keep a DeepSpeed run
    equivalent to the plain PyTorch loop (the same gradient clipping, our torch AdamW)."""
    ds = json.loads(json.dumps(user))  # a deep copy; the recipe's dict stays as written
    ds.setdefault("train_micro_batch_size_per_gpu", micro_batch)
    ds.setdefault("gradient_accumulation_steps", 1)
    ds["train_batch_size"] = ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * world
    ds.setdefault("gradient_clipping", grad_clip)
    ds.setdefault("zero_allow_untested_optimizer", True)  # our torch AdamW; ZeRO shards its state fine
    ds.setdefault("steps_per_print", 10**9)
    return ds


# ----------------------------------------------------------------------------- what a stage supplies


@dataclass
class Worker:
    """This Train worker: its rank, the world size and the device it trains on."""

    rank: int
    world: int
    device: Any


class Task:
    """One trainer's part of the loop, built on every worker with the loop config. Subclasses set `name` and
    implement `model`, `steps_per_epoch`, `batches` and `loss`; `validate`, `export` and `restore` have defaults."""

    name = "task"

    def __init__(self, config: dict, worker: Worker):
        self.config, self.worker = config, worker

    def model(self):
        """The model to train, built on CPU (the skeleton moves and wraps it)."""
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch: the same on every rank (DDP needs every rank in every step)."""
        raise NotImplementedError

    def batches(self, epoch: int) -> Iterable:
        """This rank's batches of `epoch`, in order (resuming mid-epoch skips the ones already trained)."""
        raise NotImplementedError

    def loss(self, model, batch):
        raise NotImplementedError

    def batch_size(self, batch) -> int:
        """Examples in `batch`, for the throughput figure."""
        return int(self.config["settings"]["micro_batch"])

    def validate(self, model) -> dict[str, float]:
        """Metrics on held-out data at the end of an epoch (every rank runs it; rank 0's numbers are reported)."""
        return {}

    def export(self, model, out: Path) -> None:
        """Write the model's weights into `out` (rank 0; under ZeRO-3 the trainable parameters are gathered)."""
        import torch

        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out / "model.pt")

    def restore(self, model, src: Path) -> None:
        """Load weights written by `export` (resuming without DeepSpeed)."""
        import torch

        model.load_state_dict(torch.load(src / "model.pt", map_location="cpu", weights_only=True))


def load_task(path: str) -> type[Task]:
    """`package.module:Class` → the Task class (workers import it themselves: nothing is pickled)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------- driver side


@dataclass
class TrainRun:
    """Everything `fit` needs: the Task, its settings and inputs, where the run lives and what it may use."""

    task: str
    """Import path of the stage's Task class, `package.module:Class`."""
    name: str
    """Ray Train run name: the same name under the same `storage` resumes from the latest checkpoint."""
    storage: Path
    resources: Any
    """The stage's `ecr_ray.config.Resources` (workers, CPUs and GPUs per worker)."""
    settings: LoopSettings | None = None
    """How `train_loop` optimises (not used by a `loop` of its own)."""
    config: dict[str, Any] = field(default_factory=dict)
    """Small, JSON-like inputs of the Task (its config section, paths, the seed)."""
    datasets: dict[str, Any] | None = None
    """Ray Data datasets; `split` names those sharded over the workers (the others reach every worker whole)."""
    split: tuple[str, ...] = ("train",)
    max_failures: int = 0
    """Restarts from the latest checkpoint after a worker or node failure before the run fails (every stage sets it
    from its config section's `max_failures`)."""
    callbacks: list | None = None
    keep: int = 2
    """Checkpoints kept on storage."""
    loop: Any = None
    """The function every worker runs (default `train_loop`, the skeleton's loop over `task`); the chat-model
    stages run transformers' Trainer in theirs (`generator/train.py`)."""
    marker: str = STATE_FILE
    """The file, relative to a checkpoint, whose presence makes it complete (`latest_checkpoint`)."""
    force_cpu: bool = False
    """Train on the CPU (gloo) even when the resources reserve GPUs (`Config.force_cpu`)."""


def fit(run: TrainRun):
    """Run (or resume) the Ray Train run; returns (result, final checkpoint). Ray must be initialised."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    config = {
        "task": run.task,
        "settings": asdict(run.settings) if run.settings else None,
        "fault": _fault_from_env(),
        "log_level": logging.getLevelName(logging.getLogger("ecr_ray").getEffectiveLevel()),
        "threads": run.resources.threads,  # torch threads per worker: ceil(cpus), as Ray tasks get
        "force_cpu": run.force_cpu,
        **run.config,
    }
    trainer = TorchTrainer(
        run.loop or train_loop,
        train_loop_config=config,
        scaling_config=run.resources.scaling_config(),
        # A GPU-holding worker group joins over NCCL by default; on the CPU it must be gloo.
        torch_config=TorchConfig(backend="gloo") if run.force_cpu else None,
        datasets=run.datasets,
        dataset_config=DataConfig(datasets_to_split=list(run.split)) if run.datasets else None,
        run_config=RunConfig(
            name=run.name,
            storage_path=str(run.storage),
            checkpoint_config=CheckpointConfig(num_to_keep=run.keep),
            failure_config=FailureConfig(max_failures=run.max_failures),
            callbacks=run.callbacks,
        ),
    )
    result = trainer.fit()
    checkpoint = result.checkpoint or latest_checkpoint(run.storage / run.name, run.marker)
    if checkpoint is None:
        raise RuntimeError(f"Ray Train run {run.name} finished without a checkpoint (error: {result.error})")
    return result, checkpoint


def latest_checkpoint(run_dir: Path, marker: str = STATE_FILE):
    """The newest complete checkpoint of a run directory (a resumed, already finished run reports none)."""
    from ray.train import Checkpoint

    done = sorted(p for p in Path(run_dir).glob("checkpoint_*") if (p / marker).exists())
    return Checkpoint.from_directory(str(done[-1])) if done else None


def read_state(checkpoint, folder: str = "") -> dict:
    """The loop state of a checkpoint: step, epoch, history (one row per epoch), losses, best (or, in `folder`, the
    state of transformers' Trainer: global_step, log_history)."""
    with checkpoint.as_directory() as d:
        return json.loads((Path(d) / folder / STATE_FILE).read_text())


def copy_model(checkpoint, dest: Path) -> None:
    """Copy the files of the checkpoint's best model (its latest, when no metric selects one) into `dest`."""
    with checkpoint.as_directory() as d:
        src = Path(d) / BEST_DIR if (Path(d) / BEST_DIR).exists() else Path(d) / MODEL_DIR
        shutil.copytree(src, dest, dirs_exist_ok=True)


def _fault_from_env() -> dict | None:
    """`ECR_TRAIN_FAULT="epoch=2,once=/tmp/marker"` → {"epoch": 2, "once": "/tmp/marker"} (tests only)."""
    text = os.environ.get(FAULT_ENV, "").strip()
    if not text:
        return None
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        out[key.strip()] = int(value) if key.strip() in ("epoch", "step") else value.strip()
    return out


# ----------------------------------------------------------------------------- worker side


@dataclass
class Stepper:
    """One optimizer step, the same for every trainer: forward (bf16 autocast on CUDA when asked), backward, gradient
    clipping, optimizer and LR-schedule step (DeepSpeed's engine does the last three itself)."""

    task: Task
    net: Any
    """What the loss runs through: the model, its DDP wrapper or the DeepSpeed engine."""
    core: Any
    """The model itself (validation, export)."""
    params: list
    optimizer: Any
    scheduler: Any
    engine: Any = None
    grad_clip: float = 1.0
    bf16_autocast: bool = False

    def precision(self):
        """The forward passes' context (training and validation alike)."""

        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16_autocast else contextlib.nullcontext()

    def __call__(self, batch):
        import torch

        with self.precision():
            loss = self.task.loss(self.net, batch)
        if self.engine is not None:
            self.engine.backward(loss)
            self.engine.step()
        else:
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss


def make_stepper(
    task: Task, model, s: LoopSettings, worker: Worker, total: int, resume_dir: Path | None = None
) -> Stepper:
    """AdamW + the warm-up/decay schedule over `total` steps for `model`, resumed from `resume_dir` when given, on
    `worker.device`: plain PyTorch, DDP when there are several workers, or DeepSpeed when `s.deepspeed` is set."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(total, s.warmup(total)))
    if not s.deepspeed:
        if resume_dir is not None:
            task.restore(model, resume_dir / MODEL_DIR)
            opt = torch.load(resume_dir / OPTIM_FILE, map_location="cpu", weights_only=True)
            optimizer.load_state_dict(opt["optimizer"])
            scheduler.load_state_dict(opt["scheduler"])
        if worker.world > 1:
            import ray.train.torch

            net = ray.train.torch.prepare_model(model, move_to_device=worker.device)  # DDP: gloo on CPU, NCCL on GPUs
        else:
            net = model.to(worker.device)
        return Stepper(
            task,
            net,
            model,
            params,
            optimizer,
            scheduler,
            grad_clip=s.grad_clip,
            bf16_autocast=s.precision == "bf16" and worker.device.type == "cuda",
        )
    import deepspeed

    if worker.device.type == "cpu":  # DeepSpeed on CPU rehearses the GPU path: skip its ~2 min shm-comm build
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    engine, optimizer, _, scheduler = deepspeed.initialize(
        model=model,
        model_parameters=params,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(s.deepspeed, s.micro_batch, worker.world, s.grad_clip),
    )
    if resume_dir is not None:  # weights, the sharded optimizer state and the schedule, as saved
        engine.load_checkpoint(str(resume_dir / DEEPSPEED_DIR), tag="latest_ckpt", load_module_strict=False)
    if (s.deepspeed.get("bf16") or {}).get("enabled"):
        bf16_boundary(engine.module)
    return Stepper(task, engine, engine.module, params, optimizer, scheduler, engine=engine)


def bf16_boundary(model) -> None:
    """DeepSpeed's bf16 makes the weights bf16, not what callers pass: a float batch met bf16 weights in the first
    Linear (the paper recipe's recommender failed so, on GPUs as on the CPU). So the model takes its floating inputs in
    bf16 (as HF's Trainer casts inputs under DeepSpeed: `Trainer._prepare_input`) and, when it was fed any, gives its
    floating outputs back in fp32: callers (losses, validation metrics, numpy) see the dtypes they always saw. Models
    fed token ids only (the generator) are left as they are, and so are sparse inputs (the recommender multiplies its
    co-occurrence rows in float32 itself)."""
    import torch

    def cast(x, dtype):
        if isinstance(x, torch.Tensor):
            return x.to(dtype) if x.is_floating_point() and x.layout == torch.strided else x
        if isinstance(x, dict):
            return {k: cast(v, dtype) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(cast(v, dtype) for v in x)
        return x

    def floats(x) -> bool:
        if isinstance(x, torch.Tensor):
            return x.is_floating_point()
        if isinstance(x, dict):
            return any(map(floats, x.values()))
        return isinstance(x, (list, tuple)) and any(map(floats, x))

    model.register_forward_pre_hook(
        lambda m, args, kw: (cast(args, torch.bfloat16), cast(kw, torch.bfloat16)), with_kwargs=True
    )
    model.register_forward_hook(
        lambda m, args, kw, out: cast(out, torch.float32) if floats(args) or floats(kw) else out, with_kwargs=True
    )


def train_loop(config: dict) -> None:
    """One Ray Train worker: build the Task, resume, train, checkpoint, report."""
    import ray.train
    import ray.train.torch
    import torch

    logging.basicConfig(level=config.get("log_level", "INFO"), format="%(message)s")
    s = LoopSettings(**{**config["settings"], "select": tuple(config["settings"]["select"] or ()) or None})
    ctx = ray.train.get_context()
    on = torch.device("cpu") if config.get("force_cpu") else ray.train.torch.get_device()
    worker = Worker(ctx.get_world_rank(), ctx.get_world_size(), on)
    torch.set_num_threads(int(config.get("threads", 1)))
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)

    task = load_task(config["task"])(config, worker)
    model = task.model()
    per_epoch = task.steps_per_epoch()
    total = s.total_steps(per_epoch)
    state = {"step": 0, "epoch": 0, "history": [], "losses": [], "best": None}
    best_dir = Path(tempfile.mkdtemp(prefix="ecr-best-"))
    checkpoint = ray.train.get_checkpoint()
    resume_dir = None
    if checkpoint:
        resume_dir = Path(tempfile.mkdtemp(prefix="ecr-resume-"))
        checkpoint.to_directory(str(resume_dir))
        state = json.loads((resume_dir / STATE_FILE).read_text())
        if (resume_dir / BEST_DIR).exists():
            shutil.copytree(resume_dir / BEST_DIR, best_dir, dirs_exist_ok=True)
        log.info("[%s] resuming at step %d of %d (epoch %d)", task.name, state["step"], total, state["epoch"] + 1)
    step_once = make_stepper(task, model, s, worker, total, resume_dir)
    net, core, engine, optimizer = step_once.net, step_once.core, step_once.engine, step_once.optimizer

    end = min(total, s.stop_after_steps or total)
    fault_step = _fault_step(config.get("fault"), per_epoch)
    t_log, n_log, started = time.perf_counter(), 0, state["step"]
    while state["step"] < end:
        epoch, pos = divmod(state["step"], per_epoch)
        net.train()
        t_epoch = time.perf_counter()
        batches = iter(task.batches(epoch))
        for _ in range(pos):  # resumed mid-epoch: these batches were trained before the checkpoint
            next(batches, None)
        for _ in range(pos, per_epoch):
            if state["step"] >= end:
                break
            batch = next(batches, None)
            if batch is None:
                raise RuntimeError(
                    f"{task.name}: batches({epoch}) yielded fewer than the {per_epoch} steps of an epoch"
                )
            if state["step"] == fault_step:
                fail_once(config["fault"], state["step"])
            lr = optimizer.param_groups[0]["lr"]
            loss = step_once(batch)
            state["step"] += 1
            state["losses"].append(round(_mean_over_ranks(loss.detach().float(), worker.world), 5))
            n_log += task.batch_size(batch) * worker.world
            step, epoch_done = state["step"], state["step"] % per_epoch == 0
            row = {
                "step": step,
                "epoch": epoch + 1,
                "loss": state["losses"][-1],
                "lr": lr,
                "samples_per_s": round(n_log / max(time.perf_counter() - t_log, 1e-9), 2),
            }
            if epoch_done:
                with step_once.precision():
                    row.update(task.validate(core))
                row["train_loss"] = round(float(np.mean(state["losses"][-per_epoch:])), 5)
                row["epoch_seconds"] = round(time.perf_counter() - t_epoch, 2)
                row["threads"] = torch.get_num_threads()
                row["device"] = worker.device.type  # with the GPUs this worker holds: `force_cpu` computes beside them
                row["gpus_held"] = len(ray.get_gpu_ids())
                state["epoch"] = epoch + 1
                state["history"].append(row)
                _select(s, state, row, lambda out: _export(task, core, engine, out, worker), best_dir)
            if worker.rank == 0 and (epoch_done or step % s.log_every == 0 or step == end):
                log.info(
                    "[%s] epoch %d step %d/%d loss %.4f lr %.2e %.1f samples/s%s",
                    task.name,
                    epoch + 1,
                    step,
                    total,
                    row["loss"],
                    lr,
                    row["samples_per_s"],
                    "".join(f" {k} {v:.4f}" for k, v in row.items() if k.startswith("valid_") and isinstance(v, float)),
                )
                t_log, n_log = time.perf_counter(), 0
            due = step == end or (step % s.checkpoint_every == 0 if s.checkpoint_every else epoch_done)
            if due:
                _checkpoint(step_once, state, row, best_dir, worker)
            elif step % s.log_every == 0:
                ray.train.report(row)
    if state["step"] == started and worker.rank == 0:
        log.info("[%s] nothing left to train (step %d of %d)", task.name, state["step"], total)


def _mean_over_ranks(x, world: int) -> float:
    """The loss of the whole global batch (every rank's mean), for logs and reports."""
    if world > 1:
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        x /= world
    return float(x)


def _fault_step(fault: dict | None, per_epoch: int) -> int | None:
    """The step at which the test switch fails: `step=N`, or the first step of `epoch=N`."""
    if not fault:
        return None
    return int(fault["step"]) if "step" in fault else (int(fault["epoch"]) - 1) * per_epoch


def fail_once(fault: dict, step: int) -> None:
    """The test switch: raise once (the marker file remembers it across the restart)."""
    marker = fault.get("once")
    if marker and Path(marker).exists():
        return
    if marker:
        Path(marker).touch()
    raise RuntimeError(f"injected failure ({FAULT_ENV}) at step {step}")


def _select(s: LoopSettings, state: dict, row: dict, export, best_dir: Path) -> None:
    """Keep the best model so far by `s.select` (rank 0 writes it; every rank takes part in a ZeRO-3 gather)."""
    if not s.select or s.select[0] not in row:
        return
    metric, mode = s.select
    value, best = float(row[metric]), state["best"]
    if best is None or (value < best["value"] if mode == "min" else value > best["value"]):
        state["best"] = {"metric": metric, "value": value, "epoch": row["epoch"], "step": row["step"]}
        shutil.rmtree(best_dir, ignore_errors=True)
        export(best_dir)


def _export(task: Task, core, engine, out: Path, worker: Worker) -> None:
    """task.export on rank 0, with ZeRO-3's partitioned trainable parameters gathered first (on every rank)."""
    gather = contextlib.nullcontext()
    if engine is not None and engine.zero_optimization_stage() == 3:
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(
            [p for p in core.parameters() if p.requires_grad], modifier_rank=None
        )
    with gather:
        if worker.rank == 0:
            task.export(core, out)


def _checkpoint(st: Stepper, state: dict, row: dict, best_dir: Path, worker: Worker) -> None:
    """Write and report one checkpoint: the weights, the best model, the optimizer/scheduler state, the loop state.
    Under DeepSpeed every rank writes its own shard of the optimizer state; Ray merges the ranks' files."""
    import ray.train
    import torch

    with tempfile.TemporaryDirectory(prefix="ecr-ckpt-") as tmp:
        d = Path(tmp)
        _export(st.task, st.core, st.engine, d / MODEL_DIR, worker)
        if st.engine is not None:
            st.engine.save_checkpoint(str(d / DEEPSPEED_DIR), tag="latest_ckpt", exclude_frozen_parameters=True)
        if worker.rank == 0:
            if st.engine is None:
                torch.save(
                    {"optimizer": st.optimizer.state_dict(), "scheduler": st.scheduler.state_dict()}, d / OPTIM_FILE
                )
            if any(best_dir.iterdir()):
                shutil.copytree(best_dir, d / BEST_DIR)
            (d / STATE_FILE).write_text(json.dumps(state, default=float))
        has_files = any(d.iterdir())
        ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(tmp) if has_files else None)


def steps_for(n_examples: int, micro_batch: int, world: int) -> int:
    """Optimizer steps per epoch when `n_examples` are dealt over `world` ranks, `micro_batch` at a time."""
    return max(1, math.ceil(n_examples / (micro_batch * world)))
