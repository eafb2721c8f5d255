"""What one epoch of `recommender.backbone: unicrs` costs on this machine with the embedded models (MiniLM token
states as the text encoder, SmolLM2-135M as the frozen PLM), measured on a few steps of real ReDial samples and
extrapolated to the cpu recipe's 7,672 training samples. Nothing is trained to the end.

    flock /tmp/ecr-heavy.lock nice .venv/bin/python benchmarks/unicrs_step.py [--samples 128] [--batch-sizes 8 16]

For each batch size: seconds per optimizer step (forward through the frozen encoder and PLM, backward into the
prefix, AdamW on the trainable parts; median of `--steps` after one warm-up step), and the no-grad scoring pass per
sample (validation/test). The epoch figure = ceil(7,672 / 64) steps at the recipe's batch 64, from the per-sample
time of the largest batch measured (steps scale ~linearly with the batch on 2 cores), + scoring the 783 validation
samples. Both wall seconds and this process's CPU seconds are reported: on a shared machine the wall time grows with
the load (printed), and CPU seconds / threads is what the step would take with the cores to itself. Peak RSS is the
process's.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRAIN_SAMPLES, VALID_SAMPLES, RECIPE_BATCH = 7672, 783, 64  # the cpu recipe on the public ReDial split


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from ecr_ray.config import load_config, parse_overrides
    from ecr_ray.recommender.data import load_batchers, prepare
    from ecr_ray.recommender.model import build_model, weighted_loss

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--run-dir", default="runs/bench-unicrs")
    ap.add_argument("--samples", type=int, default=128, help="training samples prepared and drawn from")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per batch size (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=2)
    args, rest = ap.parse_known_args(argv)
    overrides = {
        "data.data_dir": str(Path(args.data_dir).resolve()),
        "run_dir": args.run_dir,
        "recommender.backbone": "unicrs",
        "recommender.variant": "baseline",  # the emotion parts cost little next to the two frozen models
        "recommender.max_train_samples": args.samples,
        **parse_overrides(rest),
    }
    cfg = load_config("cpu", overrides)
    rc = cfg.recommender
    torch.set_num_threads(args.threads)
    if not (cfg.run_path / "tables" / "manifest.json").exists():
        from ecr_ray.data.tables import build_tables

        build_tables(cfg)
    with tempfile.TemporaryDirectory(dir=cfg.run_path) as tmp:
        t0 = time.perf_counter()
        summary = prepare(cfg, Path(tmp))
        t_prep = time.perf_counter() - t0
        _, data = load_batchers(Path(tmp), ("train",))
        prep_graph = dict(np.load(Path(tmp) / "graph.npz"))
    train = data["train"]
    n = len(train)
    total = sum(summary["counts"][s]["samples"] for s in ("train", "valid", "test"))
    print(f"prepare (every turn tokenised, {total} samples' context ids): {t_prep:.1f}s")

    t0 = time.perf_counter()
    model = build_model(rc, prep_graph, None, cfg.offline)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    print(
        f"model: text encoder {rc.text_encoder}, PLM {rc.plm}: loaded in {time.perf_counter() - t0:.1f}s, "
        f"{trainable / 1e6:.1f}M trainable, {frozen / 1e6:.1f}M frozen parameters"
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=rc.lr, weight_decay=rc.weight_decay)
    rng = np.random.default_rng(0)

    def timed(fn) -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - w, time.process_time() - c

    def train_step(batch) -> None:
        loss = weighted_loss(model(batch), batch["target"], batch["weight"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    rows = []
    for b in args.batch_sizes:
        times, tokens = [], []
        for i in range(args.steps + 1):
            batch = train.batch(rng.choice(n, min(b, n), replace=False))
            model.train()
            t = timed(lambda batch=batch: train_step(batch))
            if i:  # the first step warms up (allocations, thread pools)
                times.append(t)
                tokens.append((int((batch["enc_ids"] >= 0).sum()) / b, int((batch["plm_ids"] >= 0).sum()) / b))
        model.eval()
        batch = train.batch(rng.choice(n, min(b, n), replace=False))
        with torch.no_grad():
            E = model.entity_reps()
            w_eval, c_eval = timed(lambda batch=batch, E=E: model(batch, entity_reps=E))
        wall, cpu = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
        rows.append((b, wall / b, cpu / b, w_eval / b, c_eval / b))
        print(
            f"batch {b}: {wall:.1f} s/step wall, {cpu:.1f} CPU-s ({wall / b:.2f} s and {cpu / b:.2f} CPU-s per "
            f"sample); scoring {w_eval / b:.2f} s, {c_eval / b:.2f} CPU-s per sample; mean tokens per sample: encoder "
            f"{np.mean([t[0] for t in tokens]):.0f}, PLM {np.mean([t[1] for t in tokens]):.0f}",
            flush=True,
        )
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    b, wall, cpu, w_eval, c_eval = rows[-1]
    steps = math.ceil(TRAIN_SAMPLES / RECIPE_BATCH)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for label, train_s, eval_s in (
        ("as measured (wall, shared machine)", wall, w_eval),
        (f"cores to itself (CPU-s / {args.threads} threads)", cpu / args.threads, c_eval / args.threads),
    ):
        epoch = steps * RECIPE_BATCH * train_s + VALID_SAMPLES * eval_s
        print(
            f"one epoch, {label}: {steps} steps × {RECIPE_BATCH * train_s:.0f} s + validation "
            f"{VALID_SAMPLES * eval_s:.0f} s ≈ {epoch / 3600:.1f} h; {rc.epochs} epochs ≈ "
            f"{rc.epochs * epoch / 3600:.1f} h (each prompt pre-training epoch costs one more)"
        )
    print(f"peak RSS {rss:.0f} MB (batch {b})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
