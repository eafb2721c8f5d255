"""The conversation module on the demo data and the real embedded SmolLM2: training examples with <movie> slots,
the Train run, and u_r with its slots filled by the recommender's items (or the template, said so)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from ecr_ray.config import ConfigError, ConversationConfig, load_config
from ecr_ray.conversation.data import SLOT, conversation_messages, training_examples, with_slots
from ecr_ray.conversation.predictor import ConversationPredictor, fill_slots
from ecr_ray.data.linker import EntityLinker
from ecr_ray.data.tables import build_tables, load_dataset_kg

DIALOGUES = [
    [{"role": "user", "text": "Hi! I loved Titanic and I like romantic movies."}],
    [
        {"role": "user", "text": "hello"},
        {"role": "recommender", "text": "Hi what kind of movies do you like?"},
        {"role": "user", "text": "comedies like Superbad (2007)"},
    ],
    [{"role": "user", "text": "Any good animated films? I liked Toy Story (1995)."}],
    [{"role": "user", "text": "Something scary please, like The Shining (1980)"}],
]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = load_config("demo", {"run_dir": str(tmp_path_factory.mktemp("conv") / "run")})
    build_tables(c)
    return c


def test_examples_mask_every_movie_of_recommender_turns(cfg):
    kg = load_dataset_kg(cfg)
    linker = EntityLinker.from_kg(kg, include_items=True)
    items = set(kg.item_set)
    text, n = with_slots("Try Titanic (1997) or Toy Story (1995), Tom Hanks is great", linker, items)
    assert (text, n) == (f"Try {SLOT} or {SLOT}, Tom Hanks is great", 2)  # movies only, not people
    samples = pq.read_table(cfg.run_path / "tables" / "samples.parquet", filters=[("split", "=", "train")])
    samples = samples.to_pylist()
    ex = training_examples(samples, linker, items, context_turns=2)
    turns = {(s["conversation_id"], s["turn_index"]) for s in samples}
    assert 0 < len(ex) <= len(turns)  # one per recommender turn naming a movie
    assert all(SLOT in e["target"] for e in ex)
    # No movie of the KG is left in a target. (A real ReDial turn may still name a movie the sample's KG slice does
    # not hold, e.g. "House of 1000 Corpses (2003)": the linker cannot know it is a movie.)
    assert not [m for e in ex for m in linker.link(e["target"]) if m.entity_id in items]
    msgs = conversation_messages([{"role": "user", "text": str(i)} for i in range(5)], 2)
    assert msgs[1]["content"] == "User: 3\nUser: 4" and SLOT in msgs[0]["content"]


def test_fill_slots():
    from ecr_ray.conversation.predictor import _PLACEHOLDER

    assert _PLACEHOLDER.sub(SLOT, "Try <film_name> or [ITEM], not <3") == f"Try {SLOT} or {SLOT}, not <3"
    assert fill_slots(f"Try {SLOT} or {SLOT}!", ["A (2001)", "B (2002)"]) == "Try A (2001) or B (2002)!"
    assert fill_slots(f"{SLOT}, {SLOT} and {SLOT}", ["A"]) == "A, A and A"


def test_trained_module_writes_the_recommenders_items(cfg):
    from ecr_ray.conversation.train import fit
    from ecr_ray.runtime import connect

    assert ConversationPredictor.load(cfg) is None  # no module yet: Serve uses its templates
    with connect(None):
        m = fit(cfg)
    assert m["complete"] and m["examples"] > 0 and m["slots"] >= m["examples"]
    assert m["loss_last10"] < m["loss_first10"]
    pred = ConversationPredictor.load(cfg)
    names = [["The Notebook (2004)", "Up (2009)"]] * len(DIALOGUES)
    out = pred.respond_batch(DIALOGUES, names, ["TEMPLATE"] * len(DIALOGUES))
    generated = [o for o in out if o["source"] == "conversation"]
    assert generated, out  # the trained module answers with slots
    for o in out:
        if o["source"] == "conversation":
            assert "The Notebook (2004)" in o["text"] and SLOT not in o["text"] and SLOT in o["generated"]
        else:
            assert o["text"] == "TEMPLATE" and SLOT not in o["generated"]  # no slot: the template, said so


def test_config_checks():
    with pytest.raises(ConfigError, match="conversation.method"):
        ConversationConfig(method="full")
    with pytest.raises(ConfigError, match="context_turns"):
        ConversationConfig(context_turns=0)


def _tiny_dialogpt(folder, texts: list[str]) -> str:
    """DialoGPT's architecture (GPT-2: Conv1D layers, no chat template, pad = eos) at tiny width, random weights, with a
    byte-level BPE tokenizer trained on `texts`: the paper recipe's conversation model, without a download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    assert not tok.chat_template  # the prompt takes render_prompt's plain instruction layout
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=2, n_positions=256))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_paper_recipe_conversation_path_on_a_gpt2_model(cfg, tmp_path):
    """The paper recipe trains u_r on DialoGPT-small with LoRA on c_attn / c_proj / c_fc; the same path here on a tiny
    GPT-2 with gradient checkpointing and a micro-batch of 1 accumulated to the global batch of 2: it trains, its
    adapter targets GPT-2's Conv1D layers, and the predictor answers with it."""
    import json

    from ecr_ray.conversation.train import fit
    from ecr_ray.runtime import connect

    samples = pq.read_table(cfg.run_path / "tables" / "samples.parquet").to_pylist()
    base = _tiny_dialogpt(tmp_path / "dialogpt", [s["response"] for s in samples])
    paper = load_config("paper").conversation
    c = load_config(
        "demo",
        {
            "run_dir": str(tmp_path / "run"),
            "conversation.base_model": base,
            "conversation.lora_targets": paper.lora_targets,
            "conversation.max_steps": 2,
            "conversation.batch_size": 2,
            "conversation.micro_batch_size": 1,
            "conversation.gradient_checkpointing": True,
            "conversation.max_length": 96,
        },
    )
    (c.run_path / "tables").mkdir(parents=True)
    for f in (cfg.run_path / "tables").iterdir():
        (c.run_path / "tables" / f.name).write_bytes(f.read_bytes())
    with connect(None):
        m = fit(c)
    assert m["complete"] and m["steps"] == 2 and m["accumulation"] == 2 and m["gradient_checkpointing"]
    adapter = json.loads((c.run_path / "conversation" / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["c_attn", "c_fc", "c_proj"]
    pred = ConversationPredictor.load(c)
    out = pred.respond_batch(DIALOGUES[:2], [["Up (2009)"]] * 2, ["TEMPLATE"] * 2)
    assert len(out) == 2 and all(o["source"] in ("conversation", "template") for o in out)


def test_a_worker_holding_a_gpu_fine_tunes_on_the_cpu_with_force_cpu(cfg, tmp_path):
    """The paper recipe's shape rehearsed without GPUs (`force_cpu`, docs/cluster.md): the Train worker holds a
    (logical) GPU, so Ray names cuda:0 to accelerate (ACCELERATE_TORCH_DEVICE), which would win over the Trainer's
    use_cpu and move the model to CUDA; the worker trains on the CPU instead."""
    import ray

    from ecr_ray.conversation.train import fit

    samples = pq.read_table(cfg.run_path / "tables" / "samples.parquet").to_pylist()
    base = _tiny_dialogpt(tmp_path / "dialogpt", [s["response"] for s in samples])
    c = load_config(
        "demo",
        {
            "run_dir": str(tmp_path / "run"),
            "force_cpu": True,
            "conversation.base_model": base,
            "conversation.lora_targets": ["c_attn"],
            "conversation.max_steps": 1,
            "conversation.batch_size": 1,
            "conversation.max_length": 64,
            "conversation.train_resources": {"workers": 1, "cpus": 1, "gpus": 1},
        },
    )
    (c.run_path / "tables").mkdir(parents=True)
    for f in (cfg.run_path / "tables").iterdir():
        (c.run_path / "tables" / f.name).write_bytes(f.read_bytes())
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        m = fit(c)
    finally:
        ray.shutdown()
    assert m["complete"] and m["steps"] == 1
