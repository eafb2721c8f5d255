"""Training the recommender under Ray Train: the per-worker loop (DDP on gloo, or DeepSpeed ZeRO when
`recommender.deepspeed` is set), per-epoch checkpoints, resume from `ray.train.get_checkpoint()`, and model
selection on the validation loss. Ray is imported inside the functions only."""

from __future__ import annotations

import math
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..config import RecommenderConfig
from .recommender import Batcher, build_model, load_prepared, score_split, to_device, weighted_loss
from .recommender_data import Split


def load_batchers(prep_dir: Path, splits=("train", "valid")) -> tuple[dict, dict[str, Batcher]]:
    prep = load_prepared(prep_dir)
    emb = np.load(prep["meta"]["turn_embeddings"]).astype(np.float32)
    return prep, {s: Batcher(Split.load(Path(prep_dir) / f"{s}.npz"), emb, prep["cooc"]) for s in splits}


def lr_lambda(total: int, warmup: int):
    """Linear warm-up then linear decay to 0 (UniCRS's schedule)."""
    return lambda step: (step + 1) / max(warmup, 1) if step < warmup else max(0.0, (total - step) / max(total - warmup, 1))


def train_loop(config: dict) -> None:
    """Ray Train worker loop. config: recommender (dict), prep_dir, seed, compile_shm (bool), and for tests
    fail_once_at_epoch (int) + fail_marker (path): raise once at that epoch to exercise FailureConfig + resume."""
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    rc = RecommenderConfig(**config["recommender"])
    torch.manual_seed(config["seed"])
    ctx = ray.train.get_context()
    world, rank = ctx.get_world_size(), ctx.get_world_rank()
    prep, data = load_batchers(Path(config["prep_dir"]))
    train, valid = data["train"], data["valid"]
    model = build_model(rc, prep["graph"], prep["meta"]["text_dim"])
    micro = max(1, rc.batch_size // world)  # the global batch is split across workers
    steps_per_epoch = max(1, math.ceil(len(train) / (micro * world)))
    total = steps_per_epoch * rc.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=rc.lr, weight_decay=rc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, int(rc.warmup_fraction * total)))

    state = {"epoch": 0, "history": [], "best_loss": math.inf, "best_epoch": -1}
    best_file = Path(tempfile.mkdtemp()) / "best_model.pt"
    ckpt = ray.train.get_checkpoint()
    if ckpt:  # resume: same RunConfig(name, storage_path) → the latest epoch checkpoint
        with ckpt.as_directory() as d:
            model.load_state_dict(torch.load(Path(d) / "model.pt", weights_only=True))
            st = torch.load(Path(d) / "state.pt", weights_only=False)
            sched.load_state_dict(st["scheduler"])
            if "optimizer" in st:
                opt.load_state_dict(st["optimizer"])
            state = st["state"]
            shutil.copy(Path(d) / "best_model.pt", best_file)

    device = ray.train.torch.get_device()
    if rc.deepspeed:
        import deepspeed

        from .deepspeed_config import deepspeed_config

        model.to(device)
        if not config.get("compile_shm", True):  # tests: skip the ~2 min shm-comm op build
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        engine, opt, _, sched = deepspeed.initialize(model=model, optimizer=opt, lr_scheduler=sched,
                                                     config=deepspeed_config(rc.deepspeed, micro, world))
        net, core = engine, engine.module
    else:
        net = ray.train.torch.prepare_model(model)  # DDP (gloo on CPU) when world > 1
        core = model

    for epoch in range(state["epoch"], rc.epochs):
        t0 = time.perf_counter()
        marker = config.get("fail_marker")
        if config.get("fail_once_at_epoch") == epoch + 1 and marker and not Path(marker).exists():
            Path(marker).touch()
            raise RuntimeError(f"injected failure at epoch {epoch + 1}")
        net.train()
        perm = np.random.default_rng(config["seed"] + epoch).permutation(len(train))
        shard = perm[rank::world]
        losses = []
        for step in range(steps_per_epoch):
            idx = shard[step * micro:(step + 1) * micro]
            if len(idx) == 0:  # uneven shards: every rank still takes the same number of steps
                idx = shard[:micro]
            b = to_device(train.batch(idx), device)
            loss = weighted_loss(net(b), b["target"], b["weight"])
            if rc.deepspeed:
                net.backward(loss)
                net.step()
            else:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
            losses.append(loss.item())
        v_loss, v_ce, acc = score_split(core, valid, auc_batch_size=rc.auc_batch_size)
        vm = acc.compute()
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "valid_loss": v_loss, "valid_ce": v_ce,
               **{f"valid_{k}": v for k, v in vm.items() if k in ("auc", "auc_global", "r@1", "r@10", "r@50",
                                                                    "rt@1", "rt@10", "rt@50")},
               "epoch_seconds": round(time.perf_counter() - t0, 2),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
        state["history"].append(row)
        if v_loss < state["best_loss"]:  # model selection on the validation loss (the training objective)
            state["best_loss"], state["best_epoch"] = v_loss, epoch + 1
            torch.save(core.state_dict(), best_file)
        state["epoch"] = epoch + 1
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                torch.save(core.state_dict(), Path(d) / "model.pt")
                st = {"state": state, "scheduler": sched.state_dict()}
                if not rc.deepspeed:  # DeepSpeed resumes weights + schedule position; its (sharded) optimizer restarts
                    st["optimizer"] = opt.state_dict()
                torch.save(st, Path(d) / "state.pt")
                shutil.copy(best_file, Path(d) / "best_model.pt")
                checkpoint = Checkpoint.from_directory(d)
            ray.train.report({k: v for k, v in row.items()}, checkpoint=checkpoint)
