"""Table 8 mapping, the Appendix A.1 prompt and answer parsing."""

import json

import pytest

from ecr_ray.config import EMOTIONS
from ecr_ray.labelling import prompts as L


def test_table8_is_complete():
    # The paper's Table 8 lists 68 recognized types under the nine main types; each word maps to one type.
    sizes = {t: len(ws) for t, ws in L.TABLE_8.items()}
    assert sizes == {
        "like": 17,
        "negative": 14,
        "curious": 15,
        "grateful": 6,
        "neutral": 6,
        "happy": 5,
        "surprise": 2,
        "nostalgia": 1,
        "agreement": 2,
    }
    words = [w for ws in L.TABLE_8.values() for w in ws]
    assert len(words) == len(set(words)) == 68
    assert set(L.TABLE_8) == set(EMOTIONS)
    for t, ws in L.TABLE_8.items():
        for w in ws:
            assert L.map_word(w) == t
    assert L.map_word("farewell") == "grateful" and L.map_word("familiarity") == "agreement"
    assert L.map_word("skeptical") == "curious" and L.map_word("longing") == "like"


def test_variants_map_to_their_table8_word():
    assert L.map_word("Interested") == "curious"
    assert L.map_word("frustrated") == "negative"
    assert L.map_word("nostalgic") == "nostalgia"
    assert L.map_word("gratitude") == "grateful"


def _seed_rows(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


def test_mapping_reproduces_real_seed_labels(real_data_dir):
    rows = _seed_rows(real_data_dir / "emotions" / "redial_llm_labels.jsonl")
    assert len(rows) == 3600
    bad = [r for r in rows if L.map_words(r["raw"]) != (r["labels"], [])]
    assert not bad, bad[:3]


def test_prompt_is_appendix_a1_with_at_most_four_history_turns():
    hist = [("user", f"u{i}") if i % 2 else ("recommender", f"r{i}") for i in range(6)]
    (msg,) = L.build_messages("I loved it!", hist)
    text = msg["content"]
    assert text.startswith("You are an expert in emotion analysis.")
    assert "Identify no more than two emotions" in text
    assert "comma-separated list of lowercase words" in text
    assert "not the dialogue history" in text
    assert text.endswith("Target user dialogue utterance: I loved it!")
    assert "r0" not in text and "u1" not in text and "Recommender: r2" in text and "User: u5" in text


@pytest.mark.parametrize(
    "answer, status, raw, labels",
    [
        ("happy, admiration; The user expresses ...", "ok", ["happy", "admiration"], ["happy", "like"]),
        ("frustration, disappointment\n\nThe seeker ...", "ok", ["frustration", "disappointment"], ["negative"]),
        ("Emotions: Curious, Interest. Because they ask", "ok", ["curious", "interest"], ["curious"]),
        ("**gratitude** and **friendly**", "ok", ["gratitude", "friendly"], ["grateful"]),
        ("1. love\n2. excitement", "ok", ["love", "excitement"], ["like"]),
        ("like, happy, surprise", "ok", ["like", "happy"], ["like", "happy"]),
        ("The user seems to be quite nostalgic about old films.", "scanned", ["nostalgic"], ["nostalgia"]),
    ],
)
def test_parse_answer(answer, status, raw, labels):
    p = L.parse_answer(answer)
    assert (p.status, p.raw, p.labels) == (status, raw, labels)


def test_unmapped_word_is_kept_and_reported():
    p = L.parse_answer("wistful, love; reasons")
    assert p.status == "ok" and p.raw == ["wistful", "love"] and p.labels == ["like"] and p.unmapped == ["wistful"]


@pytest.mark.parametrize("answer", ["", "   ", "I cannot help with that request!!", "12345"])
def test_unparseable_answer_keeps_its_text(answer):
    p = L.parse_answer(answer)
    if answer.strip() and "request" in answer:  # "request" is a Table 8 word: found by the scan
        assert p.status == "scanned" and p.labels == ["curious"]
        return
    assert p.status == "unparseable" and p.labels == [] and p.reason == answer.strip()
