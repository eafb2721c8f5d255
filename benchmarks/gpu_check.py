"""The prepared GPU check: the generator's own training-step code on one CUDA GPU, then decoding.

On one GPU machine with no network (torch installed, the other packages carried as wheels; docs/cluster.md), in well
under 8 minutes: builds the demo review DB and the generator's training examples (`build_examples`), runs `--steps`
LoRA steps of `GeneratorTask` through the Train skeleton's `Stepper` (the code every Train worker runs; bf16 on
CUDA), then decodes with `GeneratorPredictor` on the trained model. Prints step time, training tokens/s, decode
tokens/s and peak GPU memory as JSON.

    python benchmarks/gpu_check.py                                   # CUDA: 20 steps, batch 8, 256 tokens
    python benchmarks/gpu_check.py --device cpu --steps 2 --batch 1 --max-length 96 --new-tokens 4   # same code, CPU

No Ray is started: the step is the skeleton's, the worker is this process (rank 0 of 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--decode-batch", type=int, default=8)
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)

    import torch

    from ecr_ray.config import load_config
    from ecr_ray.generator.data import EXAMPLES_FILE, build_examples
    from ecr_ray.generator.predictor import GeneratorPredictor, Prompter
    from ecr_ray.generator.train import GeneratorTask
    from ecr_ray.reviews.build import fit as build_review_db
    from ecr_ray.train import LoopSettings, Worker, make_stepper, precision_of

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible (use --device cpu to run the same code on the CPU)")
    run = Path(tempfile.mkdtemp(prefix="ecr-gpu-check-"))
    cfg = load_config(
        "demo",
        {
            "run_dir": str(run),
            "generator.batch_size": a.batch,
            "generator.max_length": a.max_length,
            "generator.max_new_tokens": a.new_tokens,
        },
    )
    t0 = time.perf_counter()
    build_review_db(cfg, engine="local")
    counts = build_examples(cfg, run / "generator" / EXAMPLES_FILE)
    t_data = time.perf_counter() - t0

    device = torch.device(a.device)
    settings = LoopSettings(lr=cfg.generator.lr, micro_batch=a.batch, precision=precision_of(cfg.generator.dtype))
    task = GeneratorTask(
        {
            "cfg": cfg.to_dict(),
            "seed": cfg.seed,
            "examples": str(run / "generator" / EXAMPLES_FILE),
            "n_examples": counts["examples"],
            "deepspeed_bf16": False,
            "settings": {"micro_batch": a.batch},
        },
        Worker(0, 1, device),
    )
    model = task.model()
    step = make_stepper(task, model, settings, Worker(0, 1, device), total=a.steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, tokens, losses, epoch = [], 0, [], 0
    batches = iter(task.batches(epoch))
    for _ in range(a.steps):
        batch = next(batches, None)
        if batch is None:
            epoch += 1
            batches = iter(task.batches(epoch))
            batch = next(batches)
        _sync(device)
        t = time.perf_counter()
        losses.append(float(step(batch).detach().float()))
        _sync(device)
        times.append(time.perf_counter() - t)
        tokens += int(batch["attention_mask"].sum())
    train_peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None

    model.eval()
    pred = GeneratorPredictor(task.tok, model, *Prompter.sources(cfg), cfg.generator, cfg.seed)
    items = sorted(pred.knowledge)[: a.decode_batch] or [0] * a.decode_batch
    prompts = [pred.prompt(i, "You might like <movie>.")[0] for i in items]
    pred.generate(prompts[:1], max_new_tokens=2)  # warm-up
    _sync(device)
    t = time.perf_counter()
    enc = pred.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    out = pred._run(enc, pred._gen_kwargs(max_new_tokens=a.new_tokens, do_sample=False))
    _sync(device)
    decode_s = time.perf_counter() - t
    new_tokens = int((out[:, enc["input_ids"].shape[1] :] != pred.tok.pad_token_id).sum())
    report = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "precision": settings.precision,
        "examples": counts["examples"],
        "data_s": round(t_data, 1),
        "steps": a.steps,
        "batch": a.batch,
        "max_length": a.max_length,
        "step_s_median": round(statistics.median(times[1:] or times), 4),
        "step_s_first": round(times[0], 3),
        "train_tokens_per_s": round(tokens / sum(times), 1),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "train_peak_gpu_gib": None if train_peak is None else round(train_peak, 2),
        "decode_batch": len(prompts),
        "decode_new_tokens": new_tokens,
        "decode_tokens_per_s": round(new_tokens / decode_s, 1),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
    }
    print(json.dumps(report, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))
    return report


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
