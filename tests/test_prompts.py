"""Prompt texts: Eq. 8 layout (as the authors' `knowledge_used`), seeded selection, chat template, E.1/E.2 prompts."""

from __future__ import annotations

import json
import random

import pytest

from ecr_ray.config import SAMPLE_DATA_DIR
from ecr_ray.prompts import (
    INSTRUCTION,
    baseline_messages,
    compose_response,
    fill_item,
    generation_messages,
    knowledge_text,
    parse_scores,
    prompt_knowledge,
    render_prompt,
    scorer_prompt,
    select_knowledge,
)


def test_knowledge_text_matches_the_authors_layout():
    """Rebuild each sample review's `knowledge_used` from its parts: same text."""
    with open(SAMPLE_DATA_DIR / "reviews" / "imdb_reviews_ecr.jsonl") as f:
        rows = [json.loads(line) for line in f]
    for r in rows:
        lines = dict(line.split(": ", 1) for line in r["knowledge_used"].splitlines())
        ents = [] if lines["Related Entities"] == "None" else lines["Related Entities"].split(", ")
        trips = [] if lines["Related Knowledge from KG"] == "None" else lines["Related Knowledge from KG"].split(", ")
        assert knowledge_text(lines["Movie Name"], ents, trips, lines["First Sentence"]) == r["knowledge_used"]


def test_select_knowledge_is_seeded_and_bounded():
    ents, trips = [f"e{i}" for i in range(10)], [f"t{i}" for i in range(5)]
    a = select_knowledge(ents, trips, 4, 2, random.Random(1))
    assert a == select_knowledge(ents, trips, 4, 2, random.Random(1))
    assert len(a[0]) == 4 and len(a[1]) == 2 and set(a[0]) <= set(ents)
    assert a[0] == sorted(a[0], key=ents.index)  # stored order kept
    picks = {tuple(select_knowledge(ents, trips, 4, 2, random.Random(s))[0]) for s in range(20)}
    assert len(picks) > 5  # really random across seeds
    assert select_knowledge(["x"], [], 4, 2, random.Random(0)) == (["x"], [])


def test_prompt_knowledge_formats():
    """Appendix B.2's fourth setting: the same pn_t triples and pn_e entities, the triples given as their tails."""
    ents = ["December", "Record producer", "Christmas", "Tradition", "Emotion", "James Stewart"]
    trips = [f"It's a Wonderful Life's {r} is {t}" for r, t in (("writer", "Frank Capra"), ("starring", "Ward Bond"))]
    trips.append("It's a Wonderful Life's starring is James Stewart")
    tails = ["Frank Capra", "Ward Bond", "James Stewart"]
    for seed in range(10):
        e_t, t_t = prompt_knowledge(ents, trips, tails, 4, 2, "triples", random.Random(seed))
        assert (e_t, t_t) == select_knowledge(ents, trips, 4, 2, random.Random(seed))  # the triples format as before
        e_e, t_e = prompt_knowledge(ents, trips, tails, 4, 2, "entities", random.Random(seed))
        assert t_e == [] and e_e[:4] == e_t  # the same choices, no triple line
        chosen_tails = [tails[trips.index(t)] for t in t_t]
        assert e_e == list(dict.fromkeys(e_t + chosen_tails))  # pn_e + pn_t entities, each once
        assert len(e_e) == 6 or "James Stewart" in e_t
    assert prompt_knowledge(ents, [], [], 4, 2, "entities", random.Random(0))[1] == []
    with pytest.raises(ValueError, match="tails"):
        prompt_knowledge(ents, trips, tails[:1], 4, 2, "triples", random.Random(0))
    with pytest.raises(ValueError, match="knowledge_format"):
        prompt_knowledge(ents, trips, tails, 4, 2, "graph", random.Random(0))


def test_chat_template_of_the_base_model():
    from ecr_ray.hub import load_chat_model

    tok, _ = load_chat_model("smollm2")
    text = render_prompt(
        tok,
        generation_messages(
            "Up (2009)", ["Pixar"], ["Up (2009)'s director is Pete Docter"], "You should watch Up (2009)."
        ),
    )
    assert INSTRUCTION in text and "Movie Name: Up (2009)\nRelated Entities: Pixar\n" in text
    assert text.index("<|im_start|>system") < text.index("<|im_start|>user")
    assert text.rstrip().endswith("<|im_start|>assistant")


def test_plain_template_without_chat_template():
    class NoTemplate:
        chat_template = None

    text = render_prompt(NoTemplate(), generation_messages("Up", [], [], "Hi"))
    assert text.startswith("### Instruction:\n" + INSTRUCTION) and text.endswith("### Response:\n")
    assert "Related Knowledge from KG: None" in text


def test_fill_and_compose():
    assert fill_item("You should see <movie>", "Up (2009)") == "You should see Up (2009)"
    assert compose_response("You should see Up (2009)", " I cried. ") == "You should see Up (2009). I cried."
    assert compose_response("", "I cried.") == "I cried."


def test_baseline_prompts_e1():
    hist = [{"role": "user", "text": "I like horror"}, {"role": "recommender", "text": "Seen It?"}]
    llama = baseline_messages(hist, "Get Out (2017)", "llama")[0]["content"]
    assert llama.startswith("User: I like horror\nRecommender: Seen It?\n\nYou are a recommender chatting")
    assert "Please only recommend the movie Get Out (2017) and don't mention other movies." in llama
    gpt = baseline_messages(hist, "Get Out (2017)", "gpt")[0]["content"]
    assert "You are the recommender in the above conversation chatting with the user." in gpt
    with pytest.raises(ValueError):
        baseline_messages(hist, "x", "nope")


def test_scorer_prompt_e2_and_parsing():
    named = [(f"Response {c}", f"text {c}") for c in "ABCDEF"]
    p = scorer_prompt("emo_int", named, scenario="User: hi")
    assert p.startswith("We have six responses to a given scenario.")
    assert "\u201cEmotional Intensity.\u201d Emotional Intensity refers to the strength" in p
    assert "Response C: text C" in p and "Scenario:\nUser: hi" in p
    assert "We have two responses" in scorer_prompt("life", named[:2])
    with pytest.raises(ValueError):
        scorer_prompt("humour", named)
    answer = "Response A: 7\n**Response b**: 3.5\nresponse C - 12\nResponse D: 4/9\nnoise\nResponse A: 1"
    assert parse_scores(answer, ["Response A", "Response B", "Response C", "Response D"]) == {
        "Response A": 7.0,
        "Response B": 3.5,
        "Response D": 4.0,
    }


def test_as_dialogue_reads_the_context_lines_turn_line_writes():
    from ecr_ray.prompts import as_dialogue, turn_line

    dialogue = [{"role": "user", "text": "hi: there"}, {"role": "recommender", "text": "Try Up (2009)"}]
    assert as_dialogue(["User: hi: there", "Recommender: Try Up (2009)"]) == dialogue
    assert as_dialogue([turn_line(t["role"], t["text"]) for t in dialogue]) == dialogue
