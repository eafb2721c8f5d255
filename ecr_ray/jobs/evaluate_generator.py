"""Evaluate the generator: fine-tuned vs zero-shot on ReDial test contexts, offline metrics, optional LLM scorer.

The reply as served (the recommender's top item, the conversation module's u_r, then u_e; the dataset's own
recommender turn as a reference row), or with `--dataset-items` the dataset's item and its recommender turn (the
generator alone); same base model and Eq. 8 prompt for both models; optional E.1 LLM baseline and E.2 LLM scorer;
all / seen / unseen items (Table 5)."""

from __future__ import annotations

import sys

from ecr_ray.generator.evaluate import VARIANTS, EvalOptions, evaluate

from ._common import parse, print_json, ray_for
from .cli import run_job


def _args(p) -> None:
    p.add_argument("--samples", help="samples.parquet to draw test contexts from (default: <run_dir>/tables)")
    p.add_argument("--models", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    p.add_argument("--llm-base-url", help="OpenAI-compatible endpoint for the E.1 baseline (key: OPENAI_API_KEY)")
    p.add_argument("--llm-model", default="smollm2-135m-instruct")
    p.add_argument("--scorer-base-url", help="endpoint of the E.2 LLM scorer (rater 1)")
    p.add_argument("--scorer-model", default="smollm2-135m-instruct")
    p.add_argument("--scorer2-base-url", help="endpoint of a second rater: Cohen's kappa between rankings")
    p.add_argument("--scorer2-model", default="smollm2-135m-instruct")
    p.add_argument("--score-examples", type=int, default=50, help="examples sent to the LLM scorer")
    p.add_argument("--emotion-model", help="emotion classifier dir (default: <run_dir>/emotions/classifier/model)")
    p.add_argument("--out", help="output folder (default: <run_dir>/eval/generator)")
    p.add_argument(
        "--dataset-items",
        "--gold-items",  # the former name (it said "the paper's setting", which generates for the predicted item)
        dest="dataset_items",
        action="store_true",
        help="generate for each context's dataset target item after the dataset's own recommender turn (the "
        "generator alone, no recommender) instead of the reply as served (the recommender's item, the conversation "
        "module's u_r), which is how the paper generates; --gold-items is a deprecated alias",
    )
    p.add_argument("--variant", help="recommender variant of the served reply (default: the recipe's)")
    p.add_argument(
        "--top-k",
        type=int,
        help="items ranked for the served reply, filling a generated u_r's <movie> slots in order, as a request's "
        "top_k (default: serve.default_top_k)",
    )


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse(__doc__.splitlines()[0], argv, _args)
    if "--gold-items" in (sys.argv[1:] if argv is None else argv):
        print("note: --gold-items is deprecated; it is now --dataset-items (the same setting)", file=sys.stderr)
    opts = EvalOptions(
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        samples=args.samples,
        llm_base_url=args.llm_base_url,
        llm_model=args.llm_model,
        scorer_base_url=args.scorer_base_url,
        scorer_model=args.scorer_model,
        scorer2_base_url=args.scorer2_base_url,
        scorer2_model=args.scorer2_model,
        score_examples=args.score_examples,
        emotion_model=args.emotion_model,
        out=args.out,
        dataset_items=args.dataset_items,
        variant=args.variant,
        top_k=args.top_k,
    )
    with ray_for(args, cfg, ("evaluate_generator",)):
        report = evaluate(cfg, opts)
    print_json(report)
    print(f"evaluation written to {opts.out or cfg.run_path / 'eval' / 'generator'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
