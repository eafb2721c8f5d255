"""Backbone unicrs on tiny random models built here (a RoBERTa-like encoder with MiniLM's tokenizer, GPT-2- and
Llama-like PLMs with SmolLM2's tokenizer, saved with `save_pretrained`; no download): the context token ids, forward
shapes, gradients that reach the prompt encoder, fusion and KG encoder but not the frozen models, a prefix that
changes the PLM's output, padding that changes nothing, every variant switch, the saved weights; then a Ray Train fit
on the demo recipe (prompt pre-training, then recommendation), its predictor, and the serving inputs held equal to
training's for every demo test sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import torch

from ecr_ray.config import EMOTIONS, ConfigError, load_config
from ecr_ray.recommender.data import ContextTokens, cooc_rows, token_batch
from ecr_ray.recommender.model import load_saved, saved_state, weighted_loss
from ecr_ray.recommender.unicrs import UnicrsRecommender, load_frozen
from tests.recommender.served import loved

N_ENT, N_ITEMS = 30, 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, str]:
    """Folders of a tiny RoBERTa-like encoder and tiny GPT-2 / Llama (grouped-query attention) causal LMs."""
    from transformers import (
        AutoTokenizer,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        RobertaConfig,
        RobertaModel,
    )

    from ecr_ray.hub import resolve

    root = tmp_path_factory.mktemp("tiny-models")
    torch.manual_seed(0)
    enc, gpt2, llama = root / "roberta", root / "gpt2", root / "llama"
    AutoTokenizer.from_pretrained(resolve("minilm")).save_pretrained(enc)
    RobertaModel(
        RobertaConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=514,
        )
    ).save_pretrained(enc)
    tok = AutoTokenizer.from_pretrained(resolve("smollm2"))
    for path, model in (
        (gpt2, GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=48, n_layer=2, n_head=4, n_positions=512))),
        (
            llama,
            LlamaForCausalLM(
                LlamaConfig(
                    vocab_size=len(tok),
                    hidden_size=48,
                    intermediate_size=96,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    num_key_value_heads=2,
                    max_position_embeddings=512,
                )
            ),
        ),
    ):
        tok.save_pretrained(path)
        model.save_pretrained(path)
    return {"encoder": str(enc), "gpt2": str(gpt2), "llama": str(llama)}


def unicrs_cfg(tiny: dict, plm: str = "llama", top: dict | None = None, **over):
    """The demo recipe on backbone unicrs with the tiny models; `over`: recommender fields, `top`: other overrides."""
    return load_config(
        "demo",
        {
            "recommender.backbone": "unicrs",
            "recommender.text_encoder": tiny["encoder"],
            "recommender.plm": tiny[plm],
            "recommender.entity_dim": 16,
            "recommender.max_context_entities": 4,
            "recommender.max_context_tokens": 24,
            "recommender.prompt_tokens": 2,
            **{f"recommender.{k}": v for k, v in over.items()},
            **(top or {}),
        },
    )


def tiny_model(tiny: dict, variant: str = "full", plm: str = "llama", copy: bool = False) -> UnicrsRecommender:
    rc = unicrs_cfg(tiny, plm, variant=variant, copy_mentioned=copy).recommender
    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, N_ENT, (2, 80), generator=g)
    torch.manual_seed(0)
    return UnicrsRecommender(
        rc,
        num_entities=N_ENT,
        num_relations=4,
        edge_index=torch.stack([src, dst]),
        edge_type=torch.randint(0, 4, (80,), generator=g),
        item_ids=torch.arange(N_ITEMS),
        encoder=load_frozen(rc.text_encoder),
        plm=load_frozen(rc.plm, causal=True),
    ).eval()


DIALOGUES = [
    ["User: Hi! I loved Star Wars, anything like it?", "Recommender: Have you seen Alien (1979)?", "User: Not yet."],
    ["User: something funny please"],
]
P = sp.random(N_ENT, N_ENT, density=0.2, format="csr", random_state=0, dtype=np.float32)


def tiny_batch(tiny: dict, emotion: str = "happy", plm: str = "llama", dialogues=DIALOGUES, cooc=P) -> dict:
    ct = ContextTokens(tiny["encoder"], tiny[plm], 24)
    rows = [ct.context(*ct.turns(d)) for d in dialogues]
    ents = np.array([[-1, 3, 12, 5], [-1, -1, -1, 7], [1, 2, 3, 4]])[: len(dialogues)]
    emo = np.full((len(dialogues), 4, 3), -1)
    emo[:, :, 0] = EMOTIONS.index(emotion)
    b = {
        "entities": torch.as_tensor(ents),
        "emo_ids": torch.as_tensor(emo),
        "emo_probs": torch.full((len(dialogues), 4, 3), 0.5),
        "ent_age": torch.as_tensor(np.where(ents >= 0, np.arange(4)[::-1], -1)),
        "ent_role": torch.as_tensor(np.where(ents >= 0, np.arange(4) % 2, -1)),
        **token_batch(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])),
    }
    if cooc is not None:
        b["cooc"] = cooc_rows(cooc, ents)
    return b


def test_context_tokens_keep_the_most_recent_tokens(tiny):
    ct = ContextTokens(tiny["encoder"], tiny["llama"], 12)
    turns = ["User: one two three four five six seven", "Recommender: eight nine ten"]
    enc_turns, plm_turns = ct.turns(turns)
    enc, plm = ct.context(enc_turns, plm_turns)
    assert enc.shape == plm.shape == (12,)
    # encoder: [CLS] first, right-padded; the cut is from the left, so the newest turn ends the row with its [SEP]
    assert enc[0] == ct.cls and (enc >= 0).all()
    assert enc.tolist()[-len(enc_turns[1]) - 1 :] == [*enc_turns[1], ct.sep]
    # PLM: the newest turn + EOS at the end, the oldest tokens dropped
    assert plm.tolist()[-len(plm_turns[1]) - 1 :] == [*plm_turns[1], ct.eos] and (plm >= 0).all()
    (hi_enc,), (hi_plm,) = ct.turns(["User: hi"])
    short_enc, short_plm = ct.context([hi_enc], [hi_plm])
    assert short_enc.tolist() == [ct.cls, *hi_enc, ct.sep] + [-1] * (12 - len(hi_enc) - 2)
    assert short_plm.tolist() == [-1] * (12 - len(hi_plm) - 1) + [*hi_plm, ct.eos]
    # a batch drops the columns that are padding in every row, from the padded side
    b = token_batch(np.stack([enc, short_enc]), np.stack([plm, short_plm]))
    assert b["enc_ids"].shape == b["plm_ids"].shape == (2, 12)
    b = token_batch(short_enc[None], short_plm[None])
    assert b["enc_ids"].tolist() == [[ct.cls, *hi_enc, ct.sep]] and b["plm_ids"].tolist() == [[*hi_plm, ct.eos]]


@pytest.mark.parametrize("plm", ["gpt2", "llama"])
def test_forward_shapes_and_only_the_prompt_side_learns(tiny, plm):
    m = tiny_model(tiny, "full", plm).train()
    assert not m.encoder.training and not m.plm.training  # frozen: eval mode (no dropout) while training
    frozen = {n: p.detach().clone() for n, p in m.named_parameters() if n.startswith(m.FROZEN)}
    assert frozen and not any(p.requires_grad for n, p in m.named_parameters() if n.startswith(m.FROZEN))
    scores = m(tiny_batch(tiny, plm=plm))
    assert scores.shape == (2, N_ITEMS) and torch.isfinite(scores).all()
    weighted_loss(scores, torch.tensor([1, 2]), torch.tensor([2.0, 0.5])).backward()
    params = dict(m.named_parameters())
    for name in (
        "kg.node.weight",  # KG encoder
        "kg.conv.weight",
        "entity_proj.weight",
        "token_mlp.0.weight",  # token side of the fusion
        "token_proj.weight",
        "fusion.bilinear.weight",
        "fuse.emb.weight",  # Eq. 3-4
        "fuse.mlp.0.weight",
        "task",  # prompt encoder
        "task_mlp.0.weight",
        "prefix.mlp.0.weight",
        "prefix.out.weight",
    ):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
    assert all(params[n].grad is None for n in frozen)
    torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=0.1).step()
    assert all(torch.equal(params[n], v) for n, v in frozen.items())


def test_the_prefix_changes_the_plms_output(tiny):
    m = tiny_model(tiny, "baseline")
    b = tiny_batch(tiny)
    with torch.no_grad():
        E = m.entity_reps()
        tok, tok_mask = m.token_states(b["enc_ids"])
        e = m.fusion(E[b["entities"].clamp(min=0)], tok, tok_mask)
        prompt = torch.cat([(m.task + m.task_mlp(m.task)).expand(2, -1, -1), e], 1)
        mask = torch.cat([torch.ones(2, 2, dtype=torch.bool), b["entities"] >= 0], 1)
        h = m.lm_state(b["plm_ids"], m.prefix(prompt), mask)
        h_other = m.lm_state(b["plm_ids"], m.prefix(prompt * 3), mask)
        ids = b["plm_ids"][1:, (b["plm_ids"][1] >= 0)]  # the short row without its padding: no prefix at all
        plain = m.plm(input_ids=ids).last_hidden_state[:, -1]
    assert not torch.allclose(h, h_other, atol=1e-4)  # another prompt, another last hidden state
    assert not torch.allclose(h[1:], plain, atol=1e-4)  # the prefix is read
    assert torch.allclose(m(b), h @ E[m.item_ids].T, atol=1e-5)  # scores = last hidden state · item reps


def test_padding_changes_no_score(tiny):
    """A sample alone and in a batch with longer contexts (more padding, other positions) scores the same."""
    m = tiny_model(tiny, "full")
    long = DIALOGUES[0] * 3
    with torch.no_grad():
        both = m(tiny_batch(tiny, dialogues=[long, DIALOGUES[1]]))
        alone = m(tiny_batch(tiny, dialogues=[DIALOGUES[1], DIALOGUES[1]]))
    torch.testing.assert_close(both[1], alone[1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", ["baseline", "L", "LS", "LG", "full"])
def test_variant_switches(tiny, variant):
    m = tiny_model(tiny, variant)
    with torch.no_grad():
        a, b = m(tiny_batch(tiny, "happy")), m(tiny_batch(tiny, "negative"))
    assert a.shape == (2, N_ITEMS) and torch.isfinite(a).all()
    if variant == "baseline":
        assert m.fuse is None and torch.allclose(a, b)  # emotions are ignored
    else:
        assert not torch.allclose(a, b)  # Eq. 3-4: the entity's emotions change the scores
    with torch.no_grad():
        c = m(tiny_batch(tiny, "happy", cooc=sp.csr_matrix(P.shape, dtype=np.float32)))
    assert torch.allclose(a, c) != m.glob  # Eq. 5: only G variants read the co-occurrence rows
    assert sum(1 for n, _ in m.named_parameters() if n.startswith("fuse.")) == (0 if variant == "baseline" else 5)


def test_the_copy_head_on_unicrs(tiny):
    """copy_mentioned on the UniCRS backbone: log-probabilities, the items not mentioned ranked as without it (same
    weights), the mentioned ones by the pointer over the fused entity prompt; every copy parameter learns (from
    the second step on: the query starts at zero)."""
    on, off = tiny_model(tiny, "full", copy=True), tiny_model(tiny, "full")
    off.load_state_dict({k: v for k, v in on.state_dict().items() if not k.startswith("copy.")})
    b = tiny_batch(tiny)
    with torch.no_grad():
        s_on, s_off = on(b), off(b)
    torch.testing.assert_close(s_on.exp().sum(1), torch.ones(2))
    for row, items in enumerate([{3, 5}, {7}]):  # item entities (< N_ITEMS) among each row's context entities
        rest = [i for i in range(N_ITEMS) if i not in items]
        shift = s_on[row, rest] - s_off[row, rest]
        torch.testing.assert_close(shift, shift[:1].expand_as(shift), atol=1e-4, rtol=1e-4)
    on.train()
    opt = torch.optim.SGD([p for n, p in on.named_parameters() if n.startswith("copy.")], lr=0.1)
    for _ in range(2):  # the query starts at zero: the keys learn from the second step on
        opt.zero_grad()
        weighted_loss(on(b), torch.tensor([3, 7]), torch.ones(2)).backward()
        opt.step()
    for name, p in on.named_parameters():
        if name.startswith("copy."):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_pretrain_mode_scores_every_entity_without_the_task_tokens(tiny):
    """UniCRS's prompt pre-training: scores over all entities (genres and people are targets too), the recommendation
    task tokens neither read nor trained; the mode switches back for recommendation."""
    m = tiny_model(tiny, "full", copy=True).pretrain_mode()
    b = tiny_batch(tiny)
    scores = m(b)
    assert scores.shape == (2, N_ENT)
    with torch.no_grad():
        m.task.add_(5.0)
        torch.testing.assert_close(m(b), scores.detach())  # the task tokens are not part of the prompt
    unused = {n for n, p in m.named_parameters() if not p.requires_grad and not n.startswith(m.FROZEN)}
    assert unused == {n for n, _ in m.named_parameters() if n.startswith(("task", "copy."))}
    weighted_loss(scores, torch.tensor([N_ITEMS + 3, 1]), torch.ones(2)).backward()  # a non-item target
    params = dict(m.named_parameters())
    for name in ("kg.node.weight", "fusion.bilinear.weight", "fuse.mlp.0.weight", "prefix.out.weight"):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
    m.pretrain_mode(False)
    assert m(b).shape == (2, N_ITEMS) and all(p.requires_grad for n, p in m.named_parameters() if n in unused)


def test_saved_weights_leave_out_the_frozen_models(tiny, tmp_path):
    m = tiny_model(tiny, "full")
    state = saved_state(m)
    assert state and not any(k.startswith(("encoder.", "plm.")) for k in state)
    torch.save(state, tmp_path / "model.pt")
    with torch.no_grad():
        m.task.add_(1.0)  # trained weights differ from a fresh model's
        ref = m(tiny_batch(tiny))
    torch.save(saved_state(m), tmp_path / "model.pt")
    other = tiny_model(tiny, "full")
    load_saved(other, tmp_path / "model.pt")
    with torch.no_grad():
        torch.testing.assert_close(other(tiny_batch(tiny)), ref)
    with pytest.raises(RuntimeError, match="do not fit this recommender"):
        load_saved(tiny_model(tiny, "baseline"), tmp_path / "model.pt")  # no emotion fusion to load into


def test_backbone_config_is_validated():
    assert load_config("demo").recommender.backbone == "light" and load_config("cpu").recommender.backbone == "light"
    paper = load_config("paper").recommender
    assert (paper.backbone, paper.text_encoder, paper.plm) == ("unicrs", "roberta-base", "microsoft/DialoGPT-small")
    with pytest.raises(ConfigError, match="recommender.backbone: expected light\\|unicrs"):
        load_config("demo", {"recommender.backbone": "gpt"})
    with pytest.raises(ConfigError, match="pretrain_epochs: prompt pre-training is part of backbone unicrs"):
        load_config("demo", {"recommender.pretrain_epochs": 1})


# ----------------------------------------------------------------------------- on Ray, with the demo data


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """variant full on emotions linked the emotion stage's way (`link_entity_emotions`) from random turn probabilities:
    1 epoch of prompt pre-training, then 2 of recommendation, one Ray Train worker."""
    import ray

    from ecr_ray.data.tables import build_tables, read_table
    from ecr_ray.emotion.data import keep_labels
    from ecr_ray.emotion.links import TURN_EMOTIONS_SCHEMA, link_entity_emotions
    from ecr_ray.recommender.train import fit

    run = tmp_path_factory.mktemp("unicrs-job") / "run"
    cfg = unicrs_cfg(
        tiny,
        "llama",
        {"run_dir": str(run)},
        variant="full",
        copy_mentioned=True,
        epochs=2,
        pretrain_epochs=1,
        max_context_tokens=64,
    )
    build_tables(cfg)
    turns = read_table(run, "turns")
    rng = np.random.default_rng(0)
    rows = []
    for t in turns.filter(pc.equal(turns["role"], "user")).to_pylist():
        p = rng.dirichlet(np.full(len(EMOTIONS), 0.3)).astype(np.float32)
        rows.append(
            {
                **{k: t[k] for k in ("conversation_id", "turn_index", "role")},
                "probs": p.tolist(),
                "labels": keep_labels(p, cfg.emotion.threshold, fallback_top=True),
                "source": "classifier",
            }
        )
    te = pa.Table.from_pylist(rows, schema=TURN_EMOTIONS_SCHEMA)
    (run / "emotions").mkdir()
    pq.write_table(te, run / "emotions" / "turn_emotions.parquet")
    links = link_entity_emotions(turns, te, cfg.emotion.threshold, cfg.emotion.max_emotions_per_entity)
    pq.write_table(links, run / "emotions" / "entity_emotions.parquet")
    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)
    try:
        yield cfg, fit(cfg)
    finally:
        ray.shutdown()


def test_fit_pretrains_the_prompt_then_trains_recommendation(trained):
    cfg, m = trained
    out = cfg.run_path / "recommender" / "full+copy"
    assert m["backbone"] == "unicrs" and m["emotions_source"] == "file"
    assert m["pretrain"]["epochs"] == 1 and (out / "pretrain" / "model.pt").exists()
    # UniCRS's pre-training samples: one per entity every train turn names, more than the recommendation samples
    counts = m["counts"]
    assert counts["pretrain_train"]["samples"] > counts["train"]["samples"] and counts["pretrain_valid"]["samples"]
    pre = json.loads((out / "pretrain" / "pretrain.json").read_text())
    assert pre["key"] == m["key"] and "valid_loss" in pre["history"][0]
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
    for path in (out / "model.pt", out / "pretrain" / "model.pt"):  # no frozen encoder / PLM in the saved weights
        keys = torch.load(path, map_location="cpu", weights_only=True)
        assert "prefix.out.weight" in keys and not any(k.startswith(("encoder.", "plm.")) for k in keys)
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert 0 <= test["r@50"] <= 1 and np.isfinite(test["ce"])
    assert any(Path(m["ray_run"]).parent.glob("*-pretrain"))  # its own Ray Train run beside the recommendation run


def test_rerun_reuses_the_pretraining(trained):
    from ecr_ray.recommender.train import fit

    cfg, first = trained
    assert fit(cfg).get("skipped")
    (cfg.run_path / "recommender" / "full+copy" / "manifest.json").unlink()
    again = fit(cfg)  # the pre-training is done (same key) and the recommendation run resumes with nothing left
    assert not again.get("skipped") and again["pretrain"]["seconds"] == first["pretrain"]["seconds"]
    assert again["test"]["r@50"] == pytest.approx(first["test"]["r@50"])


def test_predictor_serves_a_unicrs_model(trained):
    from ecr_ray.recommender.predictor import RecommenderPredictor

    cfg, _ = trained
    p = RecommenderPredictor.load(cfg)
    assert p.tokens is not None and p.model.plm is not None
    title = p.names[int(p.item_ids[0])]
    dialogue, emotions = loved(title)
    res = p.recommend(dialogue, emotions, top_k=5)
    scores = [it["score"] for it in res["items"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    other = [{"role": "user", "text": "Something funny please"}]
    batch = p.recommend_batch([dialogue, other], [emotions, [None]], [5, 3])
    for b, (d, e, k) in zip(batch, [(dialogue, emotions, 5), (other, [None], 3)]):
        one = p.recommend(d, e, top_k=k)
        assert [i["entity_id"] for i in b["items"]] == [i["entity_id"] for i in one["items"]]
        assert [i["score"] for i in b["items"]] == pytest.approx([i["score"] for i in one["items"]], rel=1e-4, abs=1e-7)


def test_serving_builds_the_inputs_training_built_for_the_same_dialogues(trained):
    """Every demo test sample's dialogue as a client sends it (raw turns, ReDial @ids included, the user turns'
    emotion probabilities) through the serving path gives the token ids and entity inputs training built for it."""
    from tests.recommender.served import served_and_trained

    cfg, _ = trained
    served, trained_batch, split = served_and_trained(cfg)
    assert (split.enc_ids >= 0).sum(1).max() == cfg.recommender.max_context_tokens  # some contexts were cut
    for k in ("enc_ids", "plm_ids", "entities", "emo_ids", "ent_age", "ent_role"):
        assert torch.equal(served[k], trained_batch[k]), k
    torch.testing.assert_close(served["emo_probs"], trained_batch["emo_probs"])
    torch.testing.assert_close(served["cooc"].to_dense(), trained_batch["cooc"].to_dense())
    assert (trained_batch["emo_ids"][..., 0] >= 0).any()
