"""Decode speed of the generator's base model (tokens/s), batch 1 and batched, against the machine's bandwidth bound.

Batch-1 decoding reads every weight once per token, so tokens/s ≤ memory bandwidth / model bytes
(stack.md: ~20.7 GB/s → ≈38 tok/s fp32, ≈76 tok/s bf16 for SmolLM2-135M's 134.5M params).

    flock /tmp/ecr-heavy.lock .venv/bin/python benchmarks/decode_speed.py [--new-tokens 64] [--batches 1,8]

Variants: fp32 / bf16 weights × dynamic / static KV cache, the LoRA adapter merged vs unmerged (unmerged adds
2 small matmuls per target per token), and with `--compile` the compiled decode steps of `generator.compile: true`
(greedy tokens checked against eager bf16). Each row: the median of `--repeats` timed runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = (
    "Movie Name: Toy Story (1995)\nRelated Entities: Tom Hanks, Animation\nRelated Knowledge from KG: "
    "Toy Story (1995)'s director is John Lasseter\nFirst Sentence: You should watch Toy Story (1995)."
)


def run(model, tok, batch: int, new_tokens: int, repeats: int, cache=None, **gen) -> dict:
    import torch

    from ecr_ray.prompts import INSTRUCTION, render_prompt

    text = render_prompt(tok, [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": PROMPT}])
    enc = tok([text] * batch, return_tensors="pt", add_special_tokens=False)
    kw = dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        use_cache=True,
        **gen,
    )
    if cache is not None:  # compiled decoding: the one static cache its graph was compiled with, zeroed each call
        kw["cache"] = cache
    times = []
    with torch.inference_mode():
        t0 = time.perf_counter()
        first = model.generate(**enc, **kw)  # warm-up (and compile)
        warm = time.perf_counter() - t0
        for _ in range(repeats):
            if cache is not None:
                cache.reset()
            t0 = time.perf_counter()
            model.generate(**enc, **kw)
            times.append(time.perf_counter() - t0)
        # prefill alone, to report decode-only speed
        t0 = time.perf_counter()
        model(**enc)
        prefill = time.perf_counter() - t0
    t = statistics.median(times)
    return {
        "batch": batch,
        "seconds": round(t, 3),
        "tok_s": round(batch * new_tokens / t, 1),
        "decode_tok_s": round(batch * (new_tokens - 1) / (t - prefill), 1) if t > prefill else None,
        "prompt_tokens": int(enc["input_ids"].shape[1]),
        "warm_up_s": round(warm, 1),
        "tokens": first[0, enc["input_ids"].shape[1] :].tolist(),
    }


KNOWLEDGE_PROMPTS = [
    f"Movie Name: {n}\nRelated Entities: {e}\nRelated Knowledge from KG: None\nFirst Sentence: You should watch {n}."
    for n, e in [
        ("Titanic (1997)", "Leonardo DiCaprio"),
        ("Up (2009)", "Pixar"),
        ("Inception (2010)", "Christopher Nolan"),
        ("Jaws (1975)", "Steven Spielberg"),
        ("Toy Story (1995)", "Tom Hanks"),
    ]
]


def greedy_tokens(model, tok, new_tokens: int, cache=None) -> list[list[int]]:
    """Greedy continuations of KNOWLEDGE_PROMPTS, one at a time (with `cache`: reset and reused, as when compiled)."""
    import torch

    from ecr_ray.prompts import INSTRUCTION, render_prompt

    out = []
    with torch.inference_mode():
        for p in KNOWLEDGE_PROMPTS:
            enc = tok(
                [render_prompt(tok, [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": p}])],
                return_tensors="pt",
                add_special_tokens=False,
            )
            kw = {"cache": cache} if cache is not None else {}
            if cache is not None:
                cache.reset()
            ids = model.generate(
                **enc,
                max_new_tokens=new_tokens,
                do_sample=False,
                repetition_penalty=1.1,
                pad_token_id=tok.pad_token_id,
                **kw,
            )
            out.append(ids[0, enc["input_ids"].shape[1] :].tolist())
    return out


def prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share."""
    return sum(1 for _ in itertools.takewhile(lambda t: t[0] == t[1], zip(a, b)))


def main() -> None:
    import torch

    from ecr_ray.hub import load_chat_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--adapter", help="PEFT adapter dir: also time it unmerged vs merged")
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time bf16 with compiled decode steps (generator.compile; ~50 s to compile per batch)",
    )
    p.add_argument("--max-cache-len", type=int, default=512, help="static KV cache slots with --compile")
    p.add_argument("--bandwidth-gbs", type=float, default=20.7, help="memory copy bandwidth (stack.md)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    batches = [int(b) for b in a.batches.split(",")]
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        tok, model = load_chat_model(a.model, dtype=dtype)
        params = sum(x.numel() for x in model.parameters())
        bound = a.bandwidth_gbs * 1e9 / (params * torch.finfo(dtype).bits / 8)
        for cache in ("dynamic", "static"):
            gen = {"cache_implementation": "static"} if cache == "static" else {}
            for b in batches:
                r = run(model, tok, b, a.new_tokens, a.repeats, **gen)
                rows.append({"dtype": str(dtype).split(".")[1], "cache": cache, "bound_tok_s_b1": round(bound, 1), **r})
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "tokens"}), flush=True)
        if a.adapter and dtype == torch.float32:
            from peft import PeftModel

            lora = PeftModel.from_pretrained(model, a.adapter)
            for name, m in (("lora-unmerged", lora), ("lora-merged", lora.merge_and_unload())):
                r = run(m, tok, 1, a.new_tokens, a.repeats)
                rows.append({"dtype": "float32", "cache": "dynamic", "variant": name, **r})
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "tokens"}), flush=True)
        if a.compile and dtype == torch.bfloat16:
            # What `generator.compile: true` runs (GeneratorPredictor): eager prefill, compiled decode steps on a
            # fixed 512-slot static cache. Greedy tokens are compared with the eager bf16 run of the same batch.
            from transformers import StaticCache

            from ecr_ray.generator.model import compile_decode

            sdpa = greedy_tokens(model, tok, a.new_tokens)
            model.set_attn_implementation("eager")
            eager_attention = greedy_tokens(model, tok, a.new_tokens)
            compile_decode(model)
            cache = StaticCache(config=model.config, max_cache_len=a.max_cache_len)
            compiled = greedy_tokens(model, tok, a.new_tokens, cache)
            agree = {
                "compiled vs eager (SDPA)": [prefix(x, y) for x, y in zip(compiled, sdpa)],
                "eager attention vs SDPA, both uncompiled": [prefix(x, y) for x, y in zip(eager_attention, sdpa)],
            }
            for b in batches:
                cache = StaticCache(config=model.config, max_cache_len=a.max_cache_len)
                r = run(model, tok, b, a.new_tokens, a.repeats, cache=cache)
                ref = next(x for x in rows if x["dtype"] == "bfloat16" and x["cache"] == "dynamic" and x["batch"] == b)
                same = prefix(r["tokens"], ref["tokens"])
                rows.append(
                    {
                        "dtype": "bfloat16",
                        "cache": f"static {a.max_cache_len}",
                        "variant": "compiled decode",
                        "same_greedy_tokens_as_eager": f"{same}/{a.new_tokens}",
                        **r,
                    }
                )
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "tokens"}), flush=True)
        del model
    print(
        "\n| dtype | cache | batch | tok/s | decode tok/s | warm-up s | bound (batch 1) |"
        "\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['dtype']}{' ' + r['variant'] if 'variant' in r else ''} | {r['cache']} | {r['batch']} | "
            f"{r['tok_s']} | {r['decode_tok_s']} | {r['warm_up_s']} | {r.get('bound_tok_s_b1', '')} |"
        )
    if a.compile:
        print(
            f"\nbf16 greedy agreement over {len(KNOWLEDGE_PROMPTS)} knowledge prompts (tokens equal before the first "
            f"difference, of {a.new_tokens}, repetition penalty 1.1):"
        )
        for name, counts in agree.items():
            print(f"  {name}: {counts}")


if __name__ == "__main__":
    main()
