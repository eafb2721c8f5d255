"""The reply's pure steps (`ecr_ray/reply.py`); that serving and evaluation assemble the same reply with them is
tests/serve/test_app.py::test_evaluate_generator_scores_the_reply_as_served."""

from ecr_ray import reply
from ecr_ray.config import EMOTIONS
from ecr_ray.prompts import NO_ITEMS, recommendation_sentence

DIALOGUE = [
    {"role": "user", "text": "I loved Up"},
    {"role": "recommender", "text": "Try Coco (2017)"},
    {"role": "user", "text": "that one scared me"},
]


def probs(label: str) -> list[float]:
    return [1.0 if e == label else 0.0 for e in EMOTIONS]


def test_user_turns_without_emotions_are_classified_in_one_call():
    calls = []

    def predict(texts):
        calls.append(texts)
        return [probs("negative") for _ in texts]

    known = reply.known_emotions(DIALOGUE, [probs("happy"), probs("happy"), None])
    assert known[1] is None  # a recommender turn has no emotions, whatever the cache holds
    out = reply.classify_user_turns(DIALOGUE, known, predict)
    assert calls == [["that one scared me"]] and out == [probs("happy"), None, probs("negative")]
    assert reply.classify_user_turns(DIALOGUE, out, predict) == out and len(calls) == 1


def test_template_names_the_top_item_in_the_last_user_turns_emotion():
    emotions = [probs("happy"), None, probs("negative")]
    items = reply.ranked_items(
        {
            "items": [
                {"entity_id": 3, "name": "Up (2009)", "score": 0.5},
                {"entity_id": 4, "name": "Coco (2017)", "score": 0.1},
            ]
        }
    )
    assert reply.template_sentence(DIALOGUE, emotions, items) == recommendation_sentence("Up (2009)", probs("negative"))
    assert reply.template_sentence(DIALOGUE, emotions, []) == NO_ITEMS
    assert reply.slot_names(items) == ["Up (2009)", "Coco (2017)"]  # every ranked item, best first
    assert reply.recommendations(None, [DIALOGUE], [["Up (2009)"]], ["T"]) == [{"text": "T", "source": "template"}]


def test_compose_without_and_with_u_e():
    emotions = [probs("happy"), None, probs("negative")]
    items = [{"entity_id": 3, "name": "Up (2009)", "score": 0.5}]
    ur = {"text": "You might like Up (2009)", "source": "template"}
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    out = reply.compose(DIALOGUE, emotions, items, {"explanation": {"entities": ("Up",)}}, ur, None, usage)
    assert out["response"]["final"] == ur["text"] and out["response"]["empathetic"] == ""
    assert out["explanation"] == {"entities": ["Up"], "triples": [], "review_entities": []}
    assert [max(e, key=e.get) for e in out["user_emotions"]] == ["happy", "negative"] and out["turns"] == 3
    ue = {
        "empathetic": "It is warm.",
        "response": "You might like Up (2009). It is warm.",
        "knowledge": {"triples": [["a", "b", "c"]]},
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }
    reply.add_usage(usage, ue["usage"])
    out = reply.compose(DIALOGUE, emotions, items, {}, ur, ue, usage)
    assert out["response"]["final"] == ue["response"] and out["explanation"]["triples"] == [["a", "b", "c"]]
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
