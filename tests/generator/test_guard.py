"""The reply guard (generator/guard.py) on the demo KG and the real embedded SmolLM2: which sentences reach the user,
sentence-wise streaming, another try when nothing is left, and the knowledge bonus of decoding."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ecr_ray.config import ConfigError, GeneratorConfig, load_config
from ecr_ray.data.linker import EntityLinker
from ecr_ray.generator.guard import EntityGuard, SentenceStream, sentences
from ecr_ray.generator.predictor import GeneratorPredictor, _clean
from ecr_ray.reviews.build import fit as build_review_db
from ecr_ray.scoring import offline_metrics, without_title
from tests.conftest import item_id


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = load_config("demo", {"run_dir": str(tmp_path_factory.mktemp("guard") / "run"), "generator.max_new_tokens": 24})
    build_review_db(c, engine="local")
    return c


@pytest.fixture(scope="module")
def pred(cfg):
    return GeneratorPredictor.load(cfg, zero_shot=True)


@pytest.fixture(scope="module")
def item(pred) -> int:
    """Titanic (1997) in the demo KG: reviewed, with KG neighbours."""
    return item_id(pred.kg, "Titanic (1997)")


def _named(guard: EntityGuard, allowed: bool, item: int) -> str:
    """A KG entity name the linker finds in a sentence, linked to `item` or not."""
    ok = guard.allowed(item)
    for eid, name in enumerate(guard.kg.names):
        if eid == item or eid in guard.kg.item_set or (eid in ok) != allowed:
            continue
        found = guard.linkers[0].link(f"It reminds me of {name}.")
        if [m.entity_id for m in found] == [eid]:
            return name
    raise AssertionError("demo KG has no such entity")


def test_guard_drops_sentences_naming_unlinked_entities(pred, item):
    g = pred.guard
    good, bad = _named(g, True, item), _named(g, False, item)
    text = f"I loved {good} in it. Also {bad} was great. Titanic is a joy. I just saw it last night."
    v = g.check(item, text)
    assert v.text == f"I loved {good} in it. Titanic is a joy."  # the item's own title is never a problem
    assert v.dropped == [
        {"sentence": f"Also {bad} was great.", "reason": "unlinked_entity", "entities": [bad]},
        {"sentence": "I just saw it last night.", "reason": "viewing_claim"},
    ]
    other = item_id(pred.kg, "Toy Story (1995)")  # another movie: linked by the guard, not the metric
    assert g.check(item, f"It is better than {pred.kg.names[other]}.").text == ""
    # what the guard lets through scores no hallucination on the offline metric, by construction
    linker = EntityLinker.from_kg(pred.kg)
    m = offline_metrics([text, v.text], [item, item], pred.kg, linker, pred.knowledge)
    assert m["halluc_entities_per_response"] == 0.5  # only the unguarded text names one
    # the item's own title is the film, not an entity it makes up: the guard and the metric both blank it out
    said = "I loved titanic, Titanic (1997)!"
    assert without_title(pred.kg, item, said) == "I loved " + " " * 7 + ", " + " " * 14 + "!"


def test_sentence_stream_releases_what_check_keeps(pred, item):
    g = pred.guard
    text = f"Great fun for all. {_named(g, False, item)} is in it, I think. {_named(g, True, item)} shines! The end is"
    s = SentenceStream(g, item)
    out = [o for i in range(0, len(text), 3) for o in s.feed(text[i : i + 3])] + s.close()
    assert (
        "".join(out).strip()
        == g.check(item, _clean(text)).text
        == " ".join(x for x in sentences(text)[:3] if "think" not in x)
    )
    assert [d["reason"] for d in s.dropped] == ["unlinked_entity"]
    lone = SentenceStream(g, item)  # an unfinished reply with no finished sentence is kept, as _clean keeps it
    assert lone.feed("What a film") == [] and lone.close() == [" What a film"]


def test_respond_tries_again_when_the_guard_leaves_nothing(cfg, item):
    p = GeneratorPredictor.load(replace(cfg, generator=replace(cfg.generator, guard_retries=2)), zero_shot=True)

    class RejectAll(EntityGuard):  # every sentence fails: the predictor must try again, then give up honestly
        def problem(self, item, sentence):
            return {"sentence": sentence, "reason": "unlinked_entity", "entities": ["x"]}

    p.guard = RejectAll(p.kg, p.knowledge)
    r = p.respond(item, "You should watch <movie>")
    g = r["guard"]
    assert r["empathetic"] == "" and r["response"] == "You should watch Titanic (1997)."
    assert g["trimmed"] and g["regenerations"] == 2 and len(g["dropped"]) >= 3  # all three tries' sentences
    *chunks, verdict = p.stream(item, "You should watch <movie>")
    assert chunks == [] and verdict["regenerations"] == 2 and verdict["trimmed"]


def test_unguarded_predictor_streams_tokens(cfg, item):
    p = GeneratorPredictor.load(replace(cfg, generator=replace(cfg.generator, reply_guard=False)), zero_shot=True)
    r = p.respond(item, "You should watch <movie>")
    assert r["guard"] == {"checked": False} and r["empathetic"] == r["generated"]
    *chunks, verdict = p.stream(item, "You should watch <movie>")
    assert len(chunks) > 3 and verdict == {"checked": False, "usage": r["usage"], "finish_reason": r["finish_reason"]}


def test_knowledge_bonus_makes_the_reply_name_its_knowledge(cfg, pred, item):
    first = "You should watch <movie>"
    names = pred.item_knowledge(item)["review_entities"] + [
        t.rsplit(" is ", 1)[1] for t in pred.item_knowledge(item)["triples"]
    ]
    boosted = GeneratorPredictor.load(
        replace(cfg, generator=replace(cfg.generator, knowledge_bonus=8.0, reply_guard=False)), zero_shot=True
    )
    with_bonus = boosted.respond(item, first)["generated"]
    without = pred.respond(item, first)["generated"]
    assert any(n in with_bonus for n in names), with_bonus
    assert sum(n in with_bonus for n in names) > sum(n in without for n in names)


def test_config_checks():
    with pytest.raises(ConfigError, match="review_target"):
        GeneratorConfig(review_target="middle")
    with pytest.raises(ConfigError, match="knowledge_bonus"):
        GeneratorConfig(knowledge_bonus=-1)


def test_a_name_split_across_sentences_is_caught(pred, item):
    """The splitter keeps initials ("Michael J. Fox") in one sentence; a name it still cuts ("Warner Bros." |
    "Pictures ...") is checked on the text kept so far plus the new sentence, so the metric finds nothing in what
    the guard keeps."""
    g = pred.guard
    assert sentences("I loved Michael J. Fox. So good.") == ["I loved Michael J. Fox.", "So good."]
    wb = pred.kg.names.index("Warner Bros. Pictures")
    assert wb not in g.allowed(item)
    text = "It was made by Warner Bros. Pictures made it great."
    assert sentences(text) == ["It was made by Warner Bros.", "Pictures made it great."]
    late = g.problem_after(item, "It was made by Warner Bros.", "Pictures made it great.")
    assert late["entities"] == ["Warner Bros. Pictures"]  # only the two together spell it
    v = g.check(item, text)
    assert v.text != text and v.dropped
    m = offline_metrics([v.text, text], [item, item], pred.kg, EntityLinker.from_kg(pred.kg), pred.knowledge)
    assert m["halluc_entities_per_response"] == 0.5  # the unguarded text names it, the kept one does not
    s = SentenceStream(g, item)  # streaming releases the same
    assert "".join(s.feed(text) + s.close()).strip() == v.text


def test_a_sentence_that_only_says_again_what_the_reply_said_is_dropped(pred, item):
    """The demo's small generator sometimes copies u_r word for word as u_e: the guard drops a sentence whose words
    are a run of u_r's (or of an earlier kept sentence), in the reply and in the stream alike."""
    g = pred.guard
    first = "You should watch Titanic (1997), it is one of a kind."
    text = "You should watch Titanic (1997)! Enjoy it. Titanic is a joy. titanic IS a joy!! Great fun for all."
    v = g.check(item, text, first)
    assert v.text == "Enjoy it. Titanic is a joy. Great fun for all."  # two words say nothing new but are no repeat
    assert v.dropped == [
        {"sentence": "You should watch Titanic (1997)!", "reason": "repeats"},
        {"sentence": "titanic IS a joy!!", "reason": "repeats"},
    ]
    assert g.check(item, text).text == "You should watch Titanic (1997)! Enjoy it. Titanic is a joy. Great fun for all."
    s = SentenceStream(g, item, first)
    out = [o for i in range(0, len(text), 4) for o in s.feed(text[i : i + 4])] + s.close()
    assert "".join(out).strip() == v.text and s.dropped == v.dropped
    # the answer the predictors build from a generated text: u_r, then what is left of u_e
    answer = pred.reply(item, first, {}, text)
    assert answer["empathetic"] == v.text and answer["response"].startswith(first)
    assert [d["reason"] for d in answer["guard"]["dropped"]] == ["repeats", "repeats"]


def test_a_sentence_that_mostly_quotes_the_reply_is_dropped(pred, item):
    """What `make demo` answered (2026-12-07): u_r quoted in u_e, then two words. A run of REPEAT_RUN words or more
    that is at least half of a sentence is a repeat; a sentence that quotes a shorter part, or a long one inside
    more of its own, is kept."""
    g = pred.guard
    ur = "Titanic (1997) is one of those movies where they have some really cool stuff but it's not as bad as the "
    ur += "original."
    quoted = f'"{ur[:-1]}" is an'
    v = g.check(item, quoted, ur)
    assert v.text == "" and v.dropped == [{"sentence": quoted, "reason": "repeats"}]
    own = "Some say it has really cool stuff, and the music, the sets and the ending make every minute worth it."
    assert g.check(item, own, ur).text == own  # 3 words in a row from u_r
    long_own = (
        "My sister, who never liked long films, told me that it is one of those movies where they have some really "
        "cool stuff, and she still hums the songs, quotes the lines and cries at the ending every single time."
    )
    assert g.check(item, long_own, ur).text == long_own  # 11 words in a row, but not half of its 40
