"""What the reply guard costs a served reply: the fine-tuned generator answering ReDial test contexts one at a time
(batch 1, as a chat user waits for it), guard off and on, side by side in one process.

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/reply_guard.py --run-dir R [--contexts 20]

Per setting: seconds per reply (`respond`: generation, the check, another try when the guard left nothing), the
stream's time to its first text (token chunks without the guard, the first checked sentence with it) and to its
end; the guard's own check time per reply; how many replies needed another try. The recipe's decoding settings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from ecr_ray.config import load_config, parse_overrides


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--contexts", type=int, default=20)
    args, rest = ap.parse_known_args(argv)
    cfg = load_config(args.recipe, {"run_dir": args.run_dir, **parse_overrides(rest)})

    from ecr_ray.generator.evaluate import test_contexts
    from ecr_ray.generator.predictor import GeneratorPredictor

    contexts = test_contexts(cfg.run_path / "tables" / "samples.parquet", args.contexts, cfg.seed)
    pred = GeneratorPredictor.load(cfg)
    guard = pred.guard
    rows = []
    for setting in ("off", "on"):
        pred.guard = guard if setting == "on" else None
        reply_s, first_s, stream_s, check_ms, retries = [], [], [], [], 0
        for i, c in enumerate(contexts):
            req = (c["target_item"], c["response"])
            t0 = time.perf_counter()
            answer = pred.respond(*req, seed=i)
            reply_s.append(time.perf_counter() - t0)
            retries += answer["guard"].get("regenerations", 0)
            if setting == "on":
                t0 = time.perf_counter()
                guard.check(req[0], answer["generated"])
                check_ms.append(1000 * (time.perf_counter() - t0))
            t0, first = time.perf_counter(), None
            for piece in pred.stream(*req, seed=i):
                if isinstance(piece, str) and piece.strip() and first is None:
                    first = time.perf_counter() - t0
            stream_s.append(time.perf_counter() - t0)
            first_s.append(first if first is not None else stream_s[-1])
        rows.append(
            (
                setting,
                statistics.median(reply_s),
                max(reply_s),
                statistics.median(first_s),
                statistics.median(stream_s),
                statistics.mean(check_ms) if check_ms else float("nan"),
                retries,
            )
        )
    print(
        f"{len(contexts)} contexts, batch 1, {cfg.generator.max_new_tokens} new tokens, do_sample "
        f"{cfg.generator.do_sample}, knowledge_bonus {cfg.generator.knowledge_bonus}"
    )
    print(
        "| guard | reply s (median / max) | stream: first text s (median) | stream: end s (median) | check ms | "
        "another try |"
    )
    print("|---|---|---|---|---|---|")
    for name, med, mx, first, end, ms, n in rows:
        print(f"| {name} | {med:.2f} / {mx:.2f} | {first:.2f} | {end:.2f} | {ms:.2f} | {n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
