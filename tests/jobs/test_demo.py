"""What `make demo` prints: the answer as a person reads it, each sentence the reply guard dropped with its reason."""

from __future__ import annotations

from ecr_ray.jobs.demo import readable


def test_each_dropped_sentence_is_shown_with_its_own_reason():
    """The demo once printed every non-entity drop as 'claims a viewing' (a `repeats` drop included)."""
    ur = "It (2017) is one of those movies with some really cool stuff."
    answer = {
        "items": [{"name": "It (2017)"}, {"name": "Saw (2004)"}],
        "user_emotions": [{"like": 0.34, "curious": 0.31, "grateful": 0.06, "fear": 0.01}],
        "response": {
            "final": ur,
            "recommendation_source": "conversation",
            "guard": {
                "checked": True,
                "regenerations": 1,
                "dropped": [
                    {"sentence": ur, "reason": "repeats"},
                    {"sentence": "I just saw it last night.", "reason": "viewing_claim"},
                    {"sentence": "Tom Hanks is great.", "reason": "unlinked_entity", "entities": ["Tom Hanks"]},
                ],
            },
        },
    }
    text = readable([{"role": "user", "text": "I loved The Conjuring."}], answer, width=300)
    assert "reply guard removed 3 sentence(s) (regenerations: 1):" in text
    assert f"{ur!r} (says again what the reply already said)" in text
    assert "'I just saw it last night.' (claims a viewing of its own)" in text
    assert "'Tom Hanks is great.' (names Tom Hanks, not linked to It (2017))" in text
    assert "recommended: 1. It (2017), 2. Saw (2004)" in text and "like 0.34, curious 0.31, grateful 0.06" in text
