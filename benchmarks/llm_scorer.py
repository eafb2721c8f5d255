"""The Appendix E.2 LLM scorer on the reply as Serve gives it, beside zero-shot and the dataset's standard response,
with the paper's Table 2 (GPT-4-turbo scorer) printed next to ours.

    .venv/bin/python benchmarks/llm_scorer.py --run-dir R --scorer-base-url https://api.openai.com/v1 \
        --scorer-model gpt-4-turbo                       # key: OPENAI_API_KEY (environment only)

Per ReDial test context (seeded sample, `--examples`, 1,000 by default):
- **ecr**: the served reply: the recommender's top item for the context (`--variant`, emotions from the run's
  classifier), the recommendation sentence u_r naming it (Serve's), and the fine-tuned generator's u_e after the
  reply guard;
- **zero-shot**: the same u_r + the base model's u_e (same prompt, no adapter, same guard);
- **standard**: the dataset's own recommender turn (ReDial's "standard response").
The responses go to the scorer under pseudonyms in a fresh shuffled order per metric (`ecr_ray.scoring`). The run
directory needs the tables, the emotion classifier, the review DB, a trained recommender and generator (the cpu
recipe's stages). Writes <run-dir>/eval/llm_scorer/{scores.json, responses.jsonl, report.md}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from ecr_ray.config import load_config, parse_overrides

# Table 2, LLM-based scorer (GPT-4-turbo), 0-9: EmoInt, EmoPers, LogPers, Info, Life (../shared/paper/ecr-paper.txt)
PAPER_TABLE2 = {
    "UniCRS": (0.400, 0.942, 0.793, 0.673, 2.241),
    "GPT-3.5-turbo-instruct": (1.706, 3.043, 3.474, 2.975, 4.182),
    "GPT-3.5-turbo": (2.215, 3.754, 4.782, 4.147, 5.338),
    "Llama 2-7B-Chat": (3.934, 6.030, 5.886, 5.904, 7.129),
    "ECR[DialoGPT]": (4.011, 4.878, 4.736, 5.094, 5.906),
    "ECR[Llama 2-Chat]": (6.826, 7.724, 6.702, 7.653, 8.063),
}
COLUMNS = ("emo_int", "emo_pers", "log_pers", "info", "life")


def table(ours: dict[str, dict], scorer: str) -> str:
    head = "| reply | scorer | EmoInt | EmoPers | LogPers | Info | Life | unparsed |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for name, row in ours.items():
        cells = " | ".join(f"{row.get(c, float('nan')):.2f}" for c in COLUMNS)
        lines.append(f"| {name} (ours) | {scorer} | {cells} | {row.get('_missing', 0)} |")
    for name, row in PAPER_TABLE2.items():
        lines.append(f"| {name} (paper) | GPT-4-turbo | " + " | ".join(f"{v:.2f}" for v in row) + " | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--scorer-base-url", help="any OpenAI-compatible endpoint (key: OPENAI_API_KEY)")
    ap.add_argument("--scorer-model", default="smollm2-135m-instruct")
    ap.add_argument(
        "--local-scorer",
        action="store_true",
        help="score with the project's own embedded SmolLM2 endpoint (llm_server.py on 127.0.0.1): a check that the "
        "benchmark runs end to end, not a judgement worth reporting",
    )
    ap.add_argument("--examples", type=int, default=1000, help="ReDial test contexts scored")
    ap.add_argument("--variant", default=None, help="recommender variant (default: the recipe's)")
    args, rest = ap.parse_known_args(argv)
    cfg = load_config(args.recipe, {"run_dir": args.run_dir, **parse_overrides(rest)})
    if not args.scorer_base_url and not args.local_scorer:
        ap.error("give --scorer-base-url (a strong LLM, as the paper's GPT-4-turbo) or --local-scorer")
    if args.local_scorer:
        import ray

        from ecr_ray.llm_server import start_local

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        args.scorer_base_url, _ = start_local(load_config("demo"))

    from ecr_ray.generator.evaluate import generate_all, recommend_contexts, test_contexts
    from ecr_ray.generator.predictor import GeneratorPredictor
    from ecr_ray.scoring import aggregate, make_client, score_example

    out = cfg.run_path / "eval" / "llm_scorer"
    out.mkdir(parents=True, exist_ok=True)
    contexts = test_contexts(cfg.run_path / "tables" / "samples.parquet", args.examples, cfg.seed)
    t0 = time.perf_counter()
    served = [{**c, **r} for c, r in zip(contexts, recommend_contexts(cfg, contexts, args.variant))]
    print(f"recommended {len(served)} contexts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    replies = {}
    for name, zero_shot in (("ecr", False), ("zero-shot", True)):
        t0 = time.perf_counter()
        pred = GeneratorPredictor.load(cfg, zero_shot=zero_shot)
        replies[name] = generate_all(pred, served, cfg.generator.eval_batch_size)
        del pred
        print(f"{name}: {len(served)} replies in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    client, rng, scored = make_client(args.scorer_base_url), random.Random(cfg.seed), []
    t0 = time.perf_counter()
    with open(out / "responses.jsonl", "w") as f:
        for i, c in enumerate(served):
            responses = {"ecr": replies["ecr"][i]["response"], "zero-shot": replies["zero-shot"][i]["response"]}
            responses["standard"] = c["response"]
            scored.append(score_example(client, args.scorer_model, "\n".join(c["context"]), responses, rng))
            f.write(json.dumps({"sample_id": c["sample_id"], "item": c["item"], **responses}) + "\n")
            if (i + 1) % max(len(served) // 10, 1) == 0:
                print(f"scored {i + 1}/{len(served)} ({(i + 1) / (time.perf_counter() - t0):.2f}/s)", file=sys.stderr)
    ours = aggregate(scored)
    (out / "scores.json").write_text(json.dumps({"examples": len(served), "table": ours, "scored": scored}, indent=1))
    report = table({k: ours[k] for k in ("ecr", "zero-shot", "standard") if k in ours}, args.scorer_model)
    (out / "report.md").write_text(f"# LLM scorer, {len(served)} ReDial test contexts\n\n{report}\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
