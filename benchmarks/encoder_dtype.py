"""MiniLM (the recommender's context encoder) in float32, bfloat16 and int8 dynamic quantization: milliseconds per
call for one and two turns, at 1 and 2 torch threads, and the cosine of each variant's embeddings to float32's.
This is the measurement behind `serve.encoder_dtype: auto`.

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/encoder_dtype.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEXTS = [
    "User: I really loved The Notebook, it made me cry so much. Do you know any other romantic movies like that?",
    "Recommender: Have you seen Titanic (1997)? It is a classic romance with Leonardo DiCaprio and Kate Winslet.",
]


def main() -> None:
    import copy

    import torch

    from ecr_ray.recommender.model import TextEncoder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30)
    a = ap.parse_args()
    enc = TextEncoder("minilm", 200)
    fp32 = enc.model
    base = enc.encode(TEXTS)

    def ms(texts) -> float:
        enc.encode(texts)
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            enc.encode(texts)
            times.append(time.perf_counter() - t0)
        return round(statistics.median(times) * 1000, 2)

    variants = {
        "float32": lambda: fp32,
        "bfloat16": lambda: copy.deepcopy(fp32).to(torch.bfloat16),
        "int8 dynamic": lambda: torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8
        ),
    }
    print("| variant | threads | 1 turn ms | 2 turns ms | cosine to float32 (min) |\n|---|---|---|---|---|")
    for name, make in variants.items():
        enc.model = make()
        cos = float((enc.encode(TEXTS) * base).sum(1).min())
        for threads in (1, 2):
            torch.set_num_threads(threads)
            print(f"| {name} | {threads} | {ms(TEXTS[:1])} | {ms(TEXTS)} | {cos:.5f} |", flush=True)


if __name__ == "__main__":
    main()
