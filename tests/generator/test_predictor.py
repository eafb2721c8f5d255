"""Generator pieces on the real embedded SmolLM2: example encoding, knowledge at inference, generation (greedy,
sampling, batched, streaming) and the composed final response. The trained-adapter path is in
tests/jobs/test_train_generator.py."""

from __future__ import annotations

import pytest

from ecr_ray.config import GeneratorConfig, load_config
from ecr_ray.generator.data import collate, encode, training_examples
from ecr_ray.generator.predictor import GeneratorPredictor, _clean
from ecr_ray.prompts import INSTRUCTION
from ecr_ray.reviews.build import fit as build_review_db
from ecr_ray.reviews.knowledge import load_knowledge
from tests.conftest import item_id


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = load_config("demo", {"run_dir": str(tmp_path_factory.mktemp("gen") / "run"), "generator.max_new_tokens": 12})
    build_review_db(c, engine="local")
    return c


@pytest.fixture(scope="module")
def pred(cfg):
    return GeneratorPredictor.load(cfg, zero_shot=True)


def test_training_examples_use_the_reviews_own_knowledge(cfg):
    import pyarrow.parquet as pq

    reviews = pq.read_table(cfg.run_path / "reviews" / "reviews.parquet").to_pylist()
    ex = training_examples(reviews, load_knowledge(cfg.run_path), cfg.generator, seed=1)
    assert len(ex) == len(reviews) and ex == training_examples(reviews, load_knowledge(cfg.run_path), cfg.generator, 1)
    for e, r in zip(ex, reviews):
        assert e["messages"][0]["content"] == INSTRUCTION and e["target"] == r["review"]
        user = dict(line.split(": ", 1) for line in e["messages"][1]["content"].splitlines())
        ents = [] if user["Related Entities"] == "None" else user["Related Entities"].split(", ")
        assert set(ents) <= set(r["entity_names"]) and len(ents) <= cfg.generator.num_review_entities
        trips = [] if user["Related Knowledge from KG"] == "None" else user["Related Knowledge from KG"].split(", ")
        assert len(trips) <= cfg.generator.num_triples
        assert all(any(t.endswith(" is " + n) for n in r["entity_names"]) for t in trips)  # T_r: tails in review
    assert any(e["messages"][1]["content"].count("'s ") for e in ex)  # some review has KG triples


def test_training_knowledge_comes_from_the_part_of_the_review_the_loss_sees(cfg, pred):
    import pyarrow.parquet as pq

    from ecr_ray.data.linker import EntityLinker
    from ecr_ray.data.tables import load_dataset_kg
    from ecr_ray.generator.data import visible_target

    reviews = pq.read_table(cfg.run_path / "reviews" / "reviews.parquet").to_pylist()
    short = GeneratorConfig(**{**cfg.generator.__dict__, "max_length": 96})  # cuts most reviews
    linker = EntityLinker.from_kg(load_dataset_kg(cfg))
    full = training_examples(reviews, load_knowledge(cfg.run_path), short, 1)
    cut = training_examples(reviews, load_knowledge(cfg.run_path), short, 1, tokenizer=pred.tok, linker=linker)
    dropped = 0
    for e, r in zip(cut, reviews):
        seen = visible_target(pred.tok, e["messages"], r["review"], 96)
        assert len(pred.tok(seen)["input_ids"]) < len(pred.tok(r["review"])["input_ids"])  # really cut
        user = dict(line.split(": ", 1) for line in e["messages"][1]["content"].splitlines())
        ents = [] if user["Related Entities"] == "None" else user["Related Entities"].split(", ")
        linked = {n for i, n in zip(r["entities"], r["entity_names"]) if i in set(linker.link_ids(seen))}
        assert set(ents) <= linked
        dropped += len(set(r["entity_names"]) - linked)
    assert dropped > 0 and cut != full  # entities named only after the cut never reach the prompt


def test_encode_masks_the_prompt_and_fits(pred):
    msgs = [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": "Movie Name: Up"}]
    e = encode(pred.tok, msgs, "I loved it. " * 100, max_length=64)
    assert len(e["input_ids"]) == 64 == len(e["labels"])
    n_prompt = sum(x == -100 for x in e["labels"])
    assert 0 < n_prompt < 64 and all(x == -100 for x in e["labels"][:n_prompt])
    short = encode(pred.tok, msgs, "Great.", max_length=256)
    assert short["labels"][-1] == pred.tok.eos_token_id  # the model learns to stop
    b = collate([e, short], pred.tok.pad_token_id)
    assert b["input_ids"].shape == (2, 64) and b["attention_mask"][1].sum() == len(short["input_ids"])
    assert (b["labels"][1, len(short["input_ids"]) :] == -100).all()


def test_item_knowledge(pred):
    titanic = item_id(pred.kg, "Titanic (1997)")  # in the sample KG: reviewed, with review entities
    k = pred.item_knowledge(titanic)
    assert k == pred.item_knowledge(titanic)  # seeded
    assert len(k["triples"]) == 2 and all(t.startswith("Titanic (1997)'s ") for t in k["triples"])
    assert set(k["review_entities"]) <= set(pred.knowledge[titanic]["review_entity_names"])
    unseen = next(i for i in pred.kg.item_ids.tolist() if i not in pred.knowledge and pred.kg.triples_for(i))
    assert pred.item_knowledge(unseen)["review_entities"] == []  # KG triples only for items without reviews
    with pytest.raises(ValueError, match="not a KG entity"):
        pred.item_name(10**9)


def _knowledge_lines(user_message: str) -> tuple[list[str], list[str]]:
    lines = dict(line.split(": ", 1) for line in user_message.splitlines())
    ents, trips = lines["Related Entities"], lines["Related Knowledge from KG"]
    return ([] if ents == "None" else ents.split(", ")), ([] if trips == "None" else trips.split(", "))


def test_entities_format_in_training_and_inference_prompts(cfg, pred):
    """knowledge_format `entities` (Appendix B.2): no triple in the prompt, the tails of the triples the `triples`
    format would show among the entities, in the training examples and in the inference prompt alike."""
    from dataclasses import replace

    import pyarrow.parquet as pq

    from ecr_ray.generator.predictor import Prompter

    reviews = pq.read_table(cfg.run_path / "reviews" / "reviews.parquet").to_pylist()
    knowledge = load_knowledge(cfg.run_path)
    as_entities = replace(cfg.generator, knowledge_format="entities")
    tail_of = {t: tail for k in knowledge.values() for t, tail in zip(k["triples"], k["triple_tails"])}
    with_triples = 0
    for t, e in zip(
        training_examples(reviews, knowledge, cfg.generator, 1), training_examples(reviews, knowledge, as_entities, 1)
    ):
        ents, trips = _knowledge_lines(t["messages"][1]["content"])
        e_ents, e_trips = _knowledge_lines(e["messages"][1]["content"])
        assert e_trips == [] and not any(x in e["messages"][1]["content"] for x in trips)
        assert e_ents == list(dict.fromkeys(ents + [tail_of[x] for x in trips]))
        with_triples += bool(trips)
    assert with_triples > 0  # the demo reviews name KG neighbours of their movies

    prompter = Prompter(pred.tok, pred.kg, pred.knowledge, as_entities, cfg.seed)
    unseen = next(i for i in pred.kg.item_ids.tolist() if i not in pred.knowledge and pred.kg.triples_for(i))
    for item in (item_id(pred.kg, "Titanic (1997)"), unseen):
        text, _, k = prompter.prompt(item, "You should watch <movie>")
        triples = pred.item_knowledge(item)["triples"]
        assert len(triples) == 2 and k["triples"] == []
        assert "Related Knowledge from KG: None" in text and not any(x in text for x in triples)
        tails = [x.rsplit(" is ", 1)[1] for x in triples]
        assert k["review_entities"] == list(dict.fromkeys(pred.item_knowledge(item)["review_entities"] + tails))
        assert f"Related Entities: {', '.join(k['review_entities'])}\n" in text


def test_respond_greedy_sampling_stream(pred):
    titanic, conjuring = item_id(pred.kg, "Titanic (1997)"), item_id(pred.kg, "The Conjuring (2013)")
    r = pred.respond(titanic, "You should watch <movie>")
    assert r["response"].startswith("You should watch Titanic (1997). ") and r["empathetic"]
    assert r["response"].endswith(r["empathetic"]) and r["knowledge"]["triples"]
    assert pred.respond(titanic, "You should watch <movie>")["empathetic"] == r["empathetic"]  # greedy: deterministic
    sample = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 16}
    s1 = pred.respond(titanic, "Try <movie>", seed=1, **sample)
    s2 = pred.respond(titanic, "Try <movie>", seed=1, **sample)
    s3 = pred.respond(titanic, "Try <movie>", seed=2, **sample)
    assert s1 == s2 and s3["empathetic"] != s1["empathetic"]
    # usage: the prompt's and the reply's tokens over every try; finish_reason `length` when max_new_tokens cut it
    tries = 1 + r["guard"]["regenerations"]
    assert r["usage"]["prompt_tokens"] > 50 * tries and 0 < r["usage"]["completion_tokens"] <= 12 * tries
    cut = pred.respond(titanic, "You should watch <movie>", max_new_tokens=3)
    assert cut["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 3
    *chunks, verdict = pred.stream(titanic, "You should watch <movie>")  # guarded: by sentence, then the verdict
    assert chunks and all(isinstance(c, str) for c in chunks)
    assert verdict == {**r["guard"], "usage": r["usage"], "finish_reason": r["finish_reason"]}
    assert _clean("".join(chunks)) == r["empathetic"]
    batch = pred.respond_batch([(titanic, "You should watch <movie>"), (conjuring, "Have you seen <movie>?")])
    assert batch[0]["response"].startswith("You should watch Titanic (1997). ")
    assert batch[1]["response"].startswith("Have you seen The Conjuring (2013)?")


def test_clean_drops_unfinished_tail():
    assert _clean("I loved it. The cast was") == "I loved it."
    assert _clean("no sentence end") == "no sentence end"
    # the guard's sentence ends, not every ". ": an initial ends no sentence (the stream splits the same way)
    assert _clean("The film's director, John C. Reilly, star") == "The film's director, John C. Reilly, star"
    assert _clean("I loved it. Dr. No was") == "I loved it."


def test_config_validation():
    from ecr_ray.config import ConfigError

    with pytest.raises(ConfigError, match="review_filter"):
        GeneratorConfig(review_filter="huge")
    with pytest.raises(ConfigError, match="dtype"):
        GeneratorConfig(dtype="float16")
    with pytest.raises(ConfigError, match="knowledge_format"):
        GeneratorConfig(knowledge_format="graph")
    with pytest.raises(ConfigError, match="review_entity_filter"):
        GeneratorConfig(review_entity_filter="strict")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, pred):
    """A 2-layer random Llama with SmolLM2's tokenizer: the compiled path on a model that compiles in seconds.
    Large init std makes greedy choices clear-cut, so compiled and eager decoding must pick the same tokens."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    conf = LlamaConfig(
        vocab_size=len(pred.tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.5,
        bos_token_id=pred.tok.bos_token_id,
        eos_token_id=pred.tok.eos_token_id,
        pad_token_id=pred.tok.pad_token_id,
    )
    d = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(conf).save_pretrained(d)
    pred.tok.save_pretrained(d)
    return str(d)


def test_compiled_decoding_matches_eager(cfg, tiny_llama):
    from dataclasses import replace

    base = replace(cfg, generator=replace(cfg.generator, base_model=tiny_llama, max_new_tokens=8))
    eager = GeneratorPredictor.load(base, zero_shot=True)
    compiled = GeneratorPredictor.load(
        replace(base, generator=replace(base.generator, compile=True, compile_batch_sizes=[1], max_cache_len=96)),
        zero_shot=True,
    )
    prompts = ["Recommend a movie about space.", "I loved Toy Story!", "Something scary, please."]
    for p in prompts:  # the compiled batch-1 graph, called again and again on its one cache
        assert compiled.generate([p]) == eager.generate([p])
    assert compiled.generate(prompts) == eager.generate(prompts)  # batch 3: not compiled, eager
    long = ["word " * 100]  # prompt + max_new_tokens > max_cache_len: decodes eagerly, same answer
    assert compiled.generate(long) == eager.generate(long)
    item = item_id(eager.kg, "Titanic (1997)")
    streamed = _clean("".join(c for c in compiled.stream(item, "You should watch [ITEM].") if isinstance(c, str)))
    assert streamed == eager.respond(item, "You should watch [ITEM].")["empathetic"]
    # and the batch-1 calls really went through transformers' compiled decode step on the one static cache
    assert set(compiled._caches) == {1} and hasattr(compiled.model, "_compiled_call")
