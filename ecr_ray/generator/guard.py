"""No made-up entity reaches the user: every sentence of a generated reply is checked with the entity linker, and one
that names a KG entity (or a movie) not linked to the recommended item is dropped; so is one in which the speaker
claims to have just watched the film (the reviews the generator learnt from are full of such claims), and one that
only says again what the reply already said (u_r, shown just before u_e, or an earlier sentence of u_e: a small
model sometimes copies its prompt's recommendation word for word).

Linked to the item = the item itself, its 1-hop KG neighbours (any relation, both directions) and its review
entities: the same set `scoring.offline_metrics` counts hallucinations against, with the metric's own linker among
the guard's, so a guarded reply scores 0 hallucinated entities by construction. The guard links movie titles too
(the metric does not): a reply about one film that praises another is as made up. The item's own title is masked
first, in the guard and the metric alike, so "Chicago" in a reply about Chicago (2002) is the film, not the city.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from ..data.linker import EntityLinker
from ..scoring import item_related, without_title

# After . ! ? and a space, but not after an initial or a title ("J.K. Simmons", "Mr. Deeds", "Dr. Strangelove").
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\b[A-Z]\.)(?<!\b(?:Mr|Dr|Ms|St|Jr|Sr|vs)\.)(?<!\bMrs\.)\s+")
# The reviewer's own viewing, which a recommender replying in a chat has not done ("I just saw this last night").
VIEWING_CLAIM = re.compile(
    r"\b(just (saw|seen|watched|finished|got back|came back|rented)|(last|to)night|yesterday|earlier today"
    r"|this (morning|afternoon|evening|weekend)|years? old when|first (saw|watched|time i (saw|watched))"
    r"|went to (see|the)|(at|in) the (cinema|theaters?|theatres?|movies)|(premiere|screening) (of|last|yesterday))\b",
    re.I,
)


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


REPEAT_RUN = 8
"""Words in a row that a sentence may share with what was said before it is taken for a repeat, when that run is at
least half of it (u_r quoted, then a few words: the demo's generator did that)."""


def repeats(sentence: str, said: str) -> bool:
    """`sentence` adds nothing to `said`: its words (three or more), in order, are a run of `said`'s words, or most of
    them are (a run of REPEAT_RUN or more words that is at least half of the sentence)."""
    words, known = _words(sentence).split(), _words(said).split()
    if len(words) < 3:
        return False
    run = SequenceMatcher(None, words, known, autojunk=False).find_longest_match(0, len(words), 0, len(known)).size
    return run == len(words) or (run >= REPEAT_RUN and 2 * run >= len(words))


def sentences(text: str) -> list[str]:
    """Whitespace-normalised sentences (split after . ! ? followed by a space)."""
    return [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]


@dataclass
class Verdict:
    """The reply as it may be shown, and what was taken out of it."""

    text: str
    dropped: list[dict] = field(default_factory=list)
    """One per dropped sentence: {"sentence", "reason": "unlinked_entity" (with "entities": the names not linked to
    the item) | "viewing_claim" | "repeats" (u_r or an earlier sentence said it)}."""


class EntityGuard:
    def __init__(self, kg, knowledge: dict[int, dict]):
        self.kg, self.knowledge = kg, knowledge
        # with movie titles; and the hallucination metric's own linker (no titles), whose matches a longer title
        # can hide: a sentence either finds unlinked is dropped, so the metric counts none in what is kept
        self.linkers = (EntityLinker.from_kg(kg, include_items=True), EntityLinker.from_kg(kg))

    def allowed(self, item: int) -> set[int]:
        return item_related(self.kg, item, self.knowledge.get(item))

    def unlinked(self, item: int, sentence: str) -> list[str]:
        """Names of the entities `sentence` mentions (outside the item's own title) not linked to `item`."""
        ok, text = self.allowed(item), without_title(self.kg, item, sentence)
        found = {m.surface: None for lk in self.linkers for m in lk.link(text) if m.entity_id not in ok}
        return list(found)

    def problem(self, item: int, sentence: str) -> dict | None:
        """Why `sentence` may not be shown, or None."""
        bad = self.unlinked(item, sentence)
        if bad:
            return {"sentence": sentence, "reason": "unlinked_entity", "entities": bad}
        if VIEWING_CLAIM.search(sentence):
            return {"sentence": sentence, "reason": "viewing_claim"}
        return None

    def problem_after(self, item: int, kept: str, sentence: str, said: str = "") -> dict | None:
        """`problem`, with the text already kept before `sentence` and what the reply `said` before u_e (u_r): a
        sentence that repeats either is dropped, and a name that only `kept` and `sentence` together spell (split
        where the sentence splitter cut it) counts against `sentence`."""
        p = self.problem(item, sentence)
        if p:
            return p
        if repeats(sentence, f"{said} {kept}"):
            return {"sentence": sentence, "reason": "repeats"}
        if not kept:
            return None
        joined = f"{kept} {sentence}"
        bad = self.unlinked(item, joined)
        new = [b for b in bad if b not in self.unlinked(item, kept)]
        return {"sentence": sentence, "reason": "unlinked_entity", "entities": new} if new else None

    def check(self, item: int, text: str, said: str = "") -> Verdict:
        """u_e `text` as it may follow `said` (u_r) in a reply about `item`."""
        kept, dropped = [], []
        for s in sentences(text):
            p = self.problem_after(item, " ".join(kept), s, said)
            if p:
                dropped.append(p)
            else:
                kept.append(s)
        return Verdict(" ".join(kept), dropped)


class SentenceStream:
    """Token chunks in, checked sentences out (each with a leading space): a sentence is released once the next one
    has begun (or at the end), so a streamed reply shows the user only what `EntityGuard.check` would keep."""

    def __init__(self, guard: EntityGuard, item: int, said: str = ""):
        self.guard, self.item, self.said = guard, item, said
        self.buffer, self.dropped, self.sent, self.finished, self.kept = "", [], 0, 0, ""

    def _release(self, sentence: str) -> list[str]:
        p = self.guard.problem_after(self.item, self.kept, sentence, self.said)
        if p:
            self.dropped.append(p)
            return []
        self.sent += 1
        self.kept = f"{self.kept} {sentence}".strip()
        return [" " + sentence]

    def feed(self, chunk: str) -> list[str]:
        self.buffer += chunk
        parts = _SENTENCE_END.split(self.buffer)
        self.buffer = parts.pop()
        done = [" ".join(p.split()) for p in parts if p.strip()]
        self.finished += len(done)
        return [out for p in done for out in self._release(p)]

    def close(self) -> list[str]:
        """The last sentence; an unfinished one is dropped when the reply has a finished one (as `_clean` does)."""
        rest, self.buffer = " ".join(self.buffer.split()), ""
        if not rest or (self.finished and rest[-1] not in ".!?"):
            return []
        return self._release(rest)
