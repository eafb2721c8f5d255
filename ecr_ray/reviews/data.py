"""The review database's input: the reviews file and the Appendix A.2 filters (paper section 4.1.2).

Filters (Appendix A.2, thresholds from the authors' pipeline, see `../shared/notes/ecr-method.md`):
- word repetition rate ≤ 0.5 (repetition rate = 1 − distinct words / words);
- minimum words: 20 for the small-model variant, 120 for the Llama variant;
- ≥ 4 first-person pronouns (Llama variant only);
- helpfulness ≥ 1 (small) / ≥ 5 (Llama), applied only when the reviews file has a helpfulness field;
then each kept review is split into sentences and trimmed, at a sentence end, to the variant's maximum length
(150 / 300 words). Every dropped review is counted under the filter that dropped it: nothing is removed silently.

"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ..data.reviews_file import read_reviews  # noqa: F401  (the reviews file's loader)

_WORD = re.compile(r"[a-z0-9']+")
_FIRST_PERSON = frozenset(["i", "me", "my", "mine", "myself", "i'm", "i've", "i'd", "i'll", "im", "ive"])
# Sentence ends; IMDb text often lacks the space after the full stop ("one.I recommend"), split there too.
_SENT_END = re.compile(r"(?<=[.!?])\s+|(?<=[a-z][.!?])(?=[A-Z])")


@dataclass(frozen=True)
class ReviewFilter:
    """Thresholds of one Appendix A.2 variant."""

    min_words: int
    max_words: int
    min_first_person: int
    min_helpfulness: float
    max_repetition: float = 0.5


VARIANTS = {
    "small": ReviewFilter(min_words=20, max_words=150, min_first_person=0, min_helpfulness=1),
    "llama": ReviewFilter(min_words=120, max_words=300, min_first_person=4, min_helpfulness=5),
}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def repetition_rate(text: str) -> float:
    """1 − distinct words / words (0 for an empty text)."""
    w = words(text)
    return 1.0 - len(set(w)) / len(w) if w else 0.0


def first_person_count(text: str) -> int:
    return sum(w in _FIRST_PERSON for w in words(text))


def split_sentences(text: str) -> list[str]:
    text = " ".join(text.split())
    return [s.strip() for s in _SENT_END.split(text) if s.strip()]


def trim_sentences(sentences: list[str], max_words: int) -> list[str]:
    """Whole sentences up to `max_words` words; a first sentence longer than that is cut at the word limit."""
    out, n = [], 0
    for s in sentences:
        k = len(s.split())
        if n + k > max_words:
            if not out:
                out.append(" ".join(s.split()[:max_words]))
            break
        out.append(s)
        n += k
    return out


def filter_review(text: str, helpful: float | None, f: ReviewFilter) -> tuple[str | None, str | None]:
    """(cleaned review, None) if kept, else (None, name of the filter that dropped it)."""
    if helpful is not None and helpful < f.min_helpfulness:
        return None, "helpfulness"
    if len(words(text)) < f.min_words:
        return None, "min_words"
    if repetition_rate(text) > f.max_repetition:
        return None, "repetition"
    if first_person_count(text) < f.min_first_person:
        return None, "first_person"
    return " ".join(trim_sentences(split_sentences(text), f.max_words)), None


def apply_filters(rows: list[dict], f: ReviewFilter) -> tuple[list[dict], Counter]:
    kept, dropped = [], Counter()
    for r in rows:
        text, why = filter_review(r["review"], r["helpfulness"], f)
        if why:
            dropped[why] += 1
        else:
            kept.append({**r, "review": text})
    return kept, dropped
