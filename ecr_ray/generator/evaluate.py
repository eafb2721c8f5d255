"""Evaluating the generator: fine-tuned vs zero-shot on ReDial test contexts, offline metrics for all / seen /
unseen items (Table 5), the optional E.1 LLM baseline and E.2 LLM scorer.

Same base model and Eq. 8 prompt for every model; the target item of each context is the recommended item. The
driver only orchestrates: generation and emotion classification run in Ray tasks with the recipe's resources.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .. import reply
from ..config import Config
from ..conversation.predictor import ConversationPredictor
from ..data.linker import EntityLinker
from ..data.tables import load_dataset_kg
from ..emotion.model import model_dir
from ..emotion.predictor import EmotionPredictor
from ..prompts import as_dialogue
from ..recommender.predictor import RecommenderPredictor
from ..reviews.knowledge import load_knowledge
from ..runtime import run_task
from ..scoring import aggregate, baseline_responses, make_client, offline_metrics, ranking_kappa, score_example
from .guard import EntityGuard
from .predictor import GeneratorPredictor

VARIANTS = ("finetuned", "zeroshot")


@dataclass
class EvalOptions:
    """What `evaluate` compares and where it writes (the `evaluate_generator` job's flags)."""

    models: tuple[str, ...] = VARIANTS
    samples: str | None = None
    """samples.parquet to draw test contexts from (default: <run_dir>/tables)."""
    llm_base_url: str | None = None
    """OpenAI-compatible endpoint for the E.1 baseline (key: OPENAI_API_KEY)."""
    llm_model: str = "smollm2-135m-instruct"
    scorer_base_url: str | None = None
    """Endpoint of the E.2 LLM scorer (rater 1)."""
    scorer_model: str = "smollm2-135m-instruct"
    scorer2_base_url: str | None = None
    """A second rater: Cohen's kappa between the rankings."""
    scorer2_model: str = "smollm2-135m-instruct"
    score_examples: int = 50
    emotion_model: str | None = None
    """Emotion classifier dir (default: <run_dir>/emotions/classifier/model)."""
    out: str | None = None
    """Output folder (default: <run_dir>/eval/generator)."""
    dataset_items: bool = False
    """Generate for each context's dataset target item after the dataset's own recommender turn (the generator alone;
    no recommender needed) instead of the reply as served: the recommender's top item and the conversation module's
    u_r (or Serve's template), which is how the paper generates (its predicted item after UniCRS's u_r)."""
    variant: str | None = None
    """Recommender variant for the served reply (default: the recipe's)."""
    top_k: int | None = None
    """Items the recommender ranks for the served reply, which fill a generated u_r's `<movie>` slots in order
    (default: `serve.default_top_k`, what a request without `top_k` gets)."""


def test_contexts(path: Path, n: int, seed: int, split: str = "test") -> list[dict]:
    import pyarrow.parquet as pq

    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the tables first (`ecr-ray data`)")
    rows = [r for r in pq.read_table(path, filters=[("split", "=", split)]).to_pylist() if r["target_item"] >= 0]
    if not rows:
        raise ValueError(f"{path}: no {split} samples with a KG target item")
    rng = random.Random(seed)
    return rows if len(rows) <= n else sorted(rng.sample(rows, n), key=lambda r: r["sample_id"])


def recommend_contexts(cfg: Config, contexts: list[dict], variant: str | None = None, top_k: int | None = None):
    """The reply as served, up to u_r, per context (`ecr_ray.reply`'s steps on the predictors, as the ingress runs
    them on its deployments): the user turns' emotions (the emotion classifier), the recommender's `top_k` items
    (default: `serve.default_top_k`, as a request without `top_k`) and u_r: the conversation module's turn, its slots
    filled by those items, when the run has one, else Serve's template (`recommendation_source` says which).
    Batches of `generator.eval_batch_size` contexts. Run as a Ray task."""
    rec, emo = RecommenderPredictor.load(cfg, variant), EmotionPredictor.from_dir(model_dir(cfg))
    conversation = ConversationPredictor.load(cfg)
    k, batch = top_k or cfg.serve.default_top_k, cfg.generator.eval_batch_size
    out = []
    for s in range(0, len(contexts), batch):
        dialogues = [as_dialogue(c["context"]) for c in contexts[s : s + batch]]
        emotions = [
            reply.classify_user_turns(d, reply.known_emotions(d, [None] * len(d)), emo.predict) for d in dialogues
        ]
        items = [reply.ranked_items(r) for r in rec.recommend_batch(dialogues, emotions, [k] * len(dialogues))]
        templates = [reply.template_sentence(d, e, it) for d, e, it in zip(dialogues, emotions, items)]
        ur = reply.recommendations(conversation, dialogues, [reply.slot_names(it) for it in items], templates)
        for it, u in zip(items, ur):
            out.append({"item": it[0]["entity_id"], "first_sentence": u["text"], "recommendation_source": u["source"]})
    return out


def generate_all(pred, contexts: list[dict], batch_size: int) -> list[dict]:
    """Batched, prompts sorted by length (less padding), results back in input order. A context's item and
    recommendation sentence are its `item` / `first_sentence` when given, else the dataset's target and response."""
    reqs = [(c.get("item", c["target_item"]), c.get("first_sentence", c["response"])) for c in contexts]
    order = sorted(range(len(reqs)), key=lambda i: len(pred.prompt(*reqs[i])[0]))
    out: list[dict | None] = [None] * len(reqs)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        for i, r in zip(idx, pred.respond_batch([reqs[i] for i in idx])):
            out[i] = r
    return out


def _guard_stats(answers: list[dict], kg, knowledge: dict, items: list[int]) -> dict:
    """What the reply guard did to one model's replies, and what checking a reply costs (timed here, in the
    driver, on the replies as generated: the same check the predictor ran)."""
    dropped = [d for a in answers for d in a["guard"]["dropped"]]
    guard = EntityGuard(kg, knowledge)
    guard.allowed(items[0])  # builds the KG's neighbour map once (what a loaded predictor has done before)
    t0 = time.perf_counter()
    for a, item in zip(answers, items):
        guard.check(item, a["generated"])
    return {
        "replies_trimmed": sum(a["guard"]["trimmed"] for a in answers),
        "sentences_dropped": len(dropped),
        "unlinked_entity": sum(d["reason"] == "unlinked_entity" for d in dropped),
        "viewing_claim": sum(d["reason"] == "viewing_claim" for d in dropped),
        "repeats": sum(d["reason"] == "repeats" for d in dropped),
        "regenerations": sum(a["guard"]["regenerations"] for a in answers),
        "left_empty": sum(not a["empathetic"] for a in answers),
        "check_ms_per_reply": round(1000 * (time.perf_counter() - t0) / max(len(answers), 1), 2),
    }


def _table(rows: dict[str, dict], cols: list[str]) -> str:
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {m} | " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for m, r in rows.items()]
    return "\n".join(lines)


def generate(cfg: Config, contexts: list[dict], zero_shot: bool = False) -> list[dict]:
    """Replies of the trained (or zero-shot) generator for `contexts` (run as a Ray task)."""
    pred = GeneratorPredictor.load(cfg, zero_shot=zero_shot)
    return generate_all(pred, contexts, cfg.generator.eval_batch_size)


def predict_emotions(model_path: str, texts: dict[str, list[str]]):
    """Emotion probabilities of each model's replies (run as a Ray task)."""
    emo = EmotionPredictor.from_dir(model_path)
    return {m: emo.predict(t) for m, t in texts.items()}


def evaluate(cfg: Config, opts: EvalOptions) -> dict:
    """Generate, score and write <out>/{metrics.json, responses.jsonl, report.md}; returns the report."""
    import pyarrow.parquet as pq

    models = list(opts.models)
    bad = [m for m in models if m not in VARIANTS]
    if bad:
        raise ValueError(f"--models: unknown {bad}; known: {VARIANTS}")
    out = Path(opts.out or cfg.run_path / "eval" / "generator")
    out.mkdir(parents=True, exist_ok=True)
    contexts = test_contexts(
        Path(opts.samples or cfg.run_path / "tables" / "samples.parquet"), cfg.generator.eval_samples, cfg.seed
    )
    gold = [c["target_item"] for c in contexts]
    if not opts.dataset_items:  # the reply as served: predicted item, u_r; the dataset's only as the reference row
        served = run_task(
            recommend_contexts,
            cfg.generator.eval_resources,
            cfg.with_absolute_paths(),
            contexts,
            opts.variant,
            opts.top_k,
        )
        contexts = [{**c, **r} for c, r in zip(contexts, served)]
    kg = load_dataset_kg(cfg)
    linker, knowledge = EntityLinker.from_kg(kg), load_knowledge(cfg.run_path)
    seen_items = set(
        pq.read_table(cfg.run_path / "reviews" / "reviews.parquet", columns=["entity_id"])
        .column("entity_id")
        .to_pylist()
    )
    items = [c.get("item", c["target_item"]) for c in contexts]

    results, timing = {}, {}
    for m in models:  # each model generates in a Ray task of generator.eval_resources
        t0 = time.perf_counter()
        results[m] = run_task(
            generate, cfg.generator.eval_resources, cfg.with_absolute_paths(), contexts, zero_shot=(m == "zeroshot")
        )
        timing[m] = round(time.perf_counter() - t0, 1)
    texts = {m: [r["empathetic"] for r in rs] for m, rs in results.items()}
    finals = {m: [r["response"] for r in rs] for m, rs in results.items()}
    item_of = dict.fromkeys(texts, items)  # each row's recommended items (the standard responses: the gold ones)
    if not opts.dataset_items:
        texts["standard"] = finals["standard"] = [c["response"] for c in contexts]
        item_of["standard"] = gold
    guard_stats = {}
    if cfg.generator.reply_guard:  # what the guard took out: the replies as generated, beside the served ones
        for m, rs in results.items():
            texts[f"{m}_unguarded"] = [r["generated"] for r in rs]
            item_of[f"{m}_unguarded"] = items
            guard_stats[m] = _guard_stats(rs, kg, knowledge, items)
    if opts.llm_base_url:  # E.1: the LLM writes the whole response from the history
        client = make_client(opts.llm_base_url)
        t0 = time.perf_counter()
        names = [kg.names[i] for i in items]
        base = baseline_responses(
            client, opts.llm_model, [c["context"] for c in contexts], names, max_tokens=cfg.generator.max_new_tokens
        )
        texts["llm_baseline"] = finals["llm_baseline"] = base
        item_of["llm_baseline"] = items
        timing["llm_baseline"] = round(time.perf_counter() - t0, 1)

    emotion_note, probs = "", {}
    emo_dir = Path(opts.emotion_model) if opts.emotion_model else model_dir(cfg)
    if (emo_dir / "meta.json").exists():
        probs = run_task(predict_emotions, cfg.emotion.label_resources, str(emo_dir), texts)
    else:
        emotion_note = f"emotion intensity skipped: no emotion classifier at {emo_dir}"

    metrics: dict[str, dict] = {}
    for split in ("all", "seen", "unseen"):  # seen = the row's item has reviews (Table 5)
        per = {}
        for m, t in texts.items():
            its = item_of[m]
            idx = [i for i, it in enumerate(its) if split == "all" or (it in seen_items) == (split == "seen")]
            if idx:
                per[m] = offline_metrics(
                    [t[i] for i in idx],
                    [its[i] for i in idx],
                    kg,
                    linker,
                    knowledge,
                    probs[m][idx] if m in probs else None,
                )
        if per:
            metrics[split] = per

    report = {
        "contexts": len(contexts),
        "mode": "dataset_items" if opts.dataset_items else "served",
        "recommendation_source": dict(Counter(c.get("recommendation_source", "dataset") for c in contexts)),
        "predicted_is_gold": sum(a == b for a, b in zip(items, gold)),
        "seen": sum(i in seen_items for i in items),
        "generation_seconds": timing,
        "max_new_tokens": cfg.generator.max_new_tokens,
        "metrics": metrics,
        "reply_guard": guard_stats,
        "emotion_note": emotion_note,
    }
    if opts.scorer_base_url:
        rng = random.Random(cfg.seed)
        k = min(opts.score_examples, len(contexts))
        scen = ["\n".join(c["context"]) for c in contexts[:k]]
        raters = [(opts.scorer_base_url, opts.scorer_model)]
        if opts.scorer2_base_url:
            raters.append((opts.scorer2_base_url, opts.scorer2_model))
        scored = []
        for url, model in raters:
            client = make_client(url)
            scored.append(
                [score_example(client, model, scen[i], {m: finals[m][i] for m in finals}, rng) for i in range(k)]
            )
        report["llm_scores"] = {f"rater{j + 1}": aggregate(s) for j, s in enumerate(scored)}
        if len(scored) == 2:
            report["ranking_kappa"] = ranking_kappa(*scored)
        (out / "llm_scores.json").write_text(json.dumps(scored, indent=1))

    with open(out / "responses.jsonl", "w") as f:
        for i, c in enumerate(contexts):
            f.write(
                json.dumps(
                    {
                        "sample_id": c["sample_id"],
                        "context": c["context"],
                        "item": items[i],
                        "gold_item": gold[i],
                        "recommendation_source": c.get("recommendation_source", "dataset"),
                        "recommendation": c.get("first_sentence", c["response"]),  # u_r (the dataset's turn)
                        "item_name": kg.names[items[i]],
                        "seen": items[i] in seen_items,
                        "knowledge": results[models[0]][i]["knowledge"] if models else None,
                        **{m: finals[m][i] for m in finals},
                        **{f"{m}_guard": results[m][i]["guard"] for m in results},
                        **{f"{m}_generated": results[m][i]["generated"] for m in results},  # u_e before the guard
                    }
                )
                + "\n"
            )
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    md = [f"# Generator evaluation ({len(contexts)} ReDial test contexts, {report['seen']} seen items)\n"]
    if opts.dataset_items:
        md.append("Each context's dataset target item after the dataset's recommender turn (`--dataset-items`).\n")
    else:
        md.append(
            f"The reply as served: the recommender's top item ({report['predicted_is_gold']} of {len(contexts)} are "
            f"the dataset's target), u_r by {report['recommendation_source']}, then u_e. Row `standard`: the "
            "dataset's own recommender turn, for reference (its entities judged against the dataset's item).\n"
        )
    cols = [
        "n",
        "distinct_1",
        "distinct_2",
        "words_mean",
        "emotion_intensity",
        "kg_entities_per_response",
        "item_entities_per_response",
        "halluc_entities_per_response",
        "halluc_share_of_linked",
    ]
    for split, per in metrics.items():
        md += [f"\n## {split}\n", _table(per, cols)]
    if guard_stats:
        gcols = ["replies_trimmed", "sentences_dropped", "unlinked_entity", "viewing_claim", "repeats", "regenerations"]
        gcols += ["left_empty", "check_ms_per_reply"]
        md += ["\n## Reply guard (rows `*_unguarded` above: the replies before it)\n", _table(guard_stats, gcols)]
    if emotion_note:
        md.append(f"\n{emotion_note}\n")
    for r, tab in report.get("llm_scores", {}).items():
        md += [f"\n## LLM scorer {r}\n", _table(tab, ["emo_int", "emo_pers", "log_pers", "info", "life", "_missing"])]
    (out / "report.md").write_text("\n".join(md) + "\n")
    return report
