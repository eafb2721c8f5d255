"""The paper's emotion-annotation prompt (Appendix A.1), its 93→9 mapping (Table 8) and robust answer parsing.

The LLM answers freely ("happy, admiration; The user expresses ..."). `parse_answer` pulls out at most two
lowercase emotion words, `map_words` maps them to the nine main types. Nothing is dropped silently: a word outside
the mapping is kept in `raw` and listed in `unmapped`; an answer with no emotion words at all is `unparseable`
and keeps its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..config import EMOTIONS
from ..prompts import format_history, turn_line

# Appendix A.1, verbatim ([History] and [Utterance_User] are filled in by `build_messages`).
PROMPT = (
    "You are an expert in emotion analysis. Give a target user dialogue utterance and the dialogue history of the "
    "target user dialogue utterance. Identify no more than two emotions expressed in the target user dialogue "
    "utterance. Format your answers as a comma-separated list of lowercase words. And explain the reasons for your "
    "analysis. Note that you only need to analyze the emotions in the target user dialogue utterance, not the "
    "dialogue history.\n"
    "Dialogue history: {history}\n\n"
    "Target user dialogue utterance: {utterance}"
)
MAX_EMOTIONS = 2
MAX_HISTORY = 4

# Table 8: main type → the recognized types GPT-3.5-turbo produced (all 68 the table lists; the paper counts 93
# recognized types but only prints these).
TABLE_8: dict[str, tuple[str, ...]] = {
    "like": (
        "like",
        "satisfied",
        "positive",
        "preference",
        "enjoyed",
        "great",
        "excitement",
        "good",
        "love",
        "fondness",
        "entertaining",
        "enthusiasm",
        "longing",
        "admiration",
        "approval",
        "specific",
        "content",
    ),
    "negative": (
        "frustration",
        "disappointment",
        "bored",
        "negative",
        "dislike",
        "disagreement",
        "sad",
        "disinterested",
        "dissatisfaction",
        "annoyance",
        "doubt",
        "fear",
        "scared",
        "regretful",
    ),
    "curious": (
        "curious",
        "interest",
        "anticipation",
        "hopeful",
        "comparison",
        "request",
        "seeking",
        "concern",
        "confusion",
        "open",
        "intrigued",
        "skeptical",
        "uncertainty",
        "unsure",
        "hesitation",
    ),
    "grateful": ("grateful", "appreciative", "farewell", "friendly", "resignation", "thanks"),
    "neutral": ("neutral", "indifference", "polite", "casual", "calm", "cool"),
    "happy": ("happy", "funny", "humor", "joy", "amusement"),
    "surprise": ("surprise", "impressed"),
    "nostalgia": ("nostalgia",),
    "agreement": ("agreement", "familiarity"),
}
# Not in Table 8 (the paper does not print the other 25 types): words the seed annotation mapped this way.
EXTRA: dict[str, str] = {
    "impatience": "negative",
    "embarrassment": "negative",
    "weariness": "negative",
    "touched": "like",
    "apologetic": "neutral",
}
# Inflected forms of Table 8 words (LLMs say "interested" as often as "interest"); each maps to a Table 8 word.
VARIANTS: dict[str, str] = {
    "liking": "like",
    "likes": "like",
    "loved": "love",
    "loving": "love",
    "enjoy": "enjoyed",
    "enjoyment": "enjoyed",
    "enjoying": "enjoyed",
    "excited": "excitement",
    "exciting": "excitement",
    "satisfaction": "satisfied",
    "enthusiastic": "enthusiasm",
    "admire": "admiration",
    "admiring": "admiration",
    "approving": "approval",
    "positivity": "positive",
    "fond": "fondness",
    "frustrated": "frustration",
    "disappointed": "disappointment",
    "boredom": "bored",
    "sadness": "sad",
    "dissatisfied": "dissatisfaction",
    "annoyed": "annoyance",
    "doubtful": "doubt",
    "afraid": "fear",
    "regret": "regretful",
    "disagree": "disagreement",
    "curiosity": "curious",
    "interested": "interest",
    "inquisitive": "curious",
    "hope": "hopeful",
    "concerned": "concern",
    "confused": "confusion",
    "skepticism": "skeptical",
    "uncertain": "uncertainty",
    "hesitant": "hesitation",
    "gratitude": "grateful",
    "thankful": "thanks",
    "thank": "thanks",
    "appreciation": "appreciative",
    "friendliness": "friendly",
    "indifferent": "indifference",
    "politeness": "polite",
    "happiness": "happy",
    "humorous": "humor",
    "amused": "amusement",
    "joyful": "joy",
    "surprised": "surprise",
    "nostalgic": "nostalgia",
    "agree": "agreement",
    "agreeable": "agreement",
    "familiar": "familiarity",
}

WORD_TO_TYPE: dict[str, str] = {w: t for t, words in TABLE_8.items() for w in words} | EXTRA
for _v, _w in VARIANTS.items():
    WORD_TO_TYPE.setdefault(_v, WORD_TO_TYPE[_w])
assert set(TABLE_8) == set(EMOTIONS)


def map_word(word: str) -> str | None:
    """One raw emotion word → its main type, or None when the mapping does not know it."""
    return WORD_TO_TYPE.get(word.strip().lower())


def map_words(words: list[str]) -> tuple[list[str], list[str]]:
    """Raw words (strongest first) → (main types, deduplicated, order kept; words the mapping does not know)."""
    labels, unmapped = [], []
    for w in words:
        t = map_word(w)
        if t is None:
            unmapped.append(w)
        elif t not in labels:
            labels.append(t)
    return labels, unmapped


def build_messages(utterance: str, history: list[tuple[str, str]]) -> list[dict]:
    """Chat messages for one user turn with up to MAX_HISTORY previous turns."""
    hist = format_history([turn_line(r, t) for r, t in history[-MAX_HISTORY:]]) if history else "(none)"
    return [{"role": "user", "content": PROMPT.format(history=hist, utterance=utterance)}]


@dataclass
class Parsed:
    """One parsed LLM answer."""

    status: str
    """`ok` (words found in the answer's head), `scanned` (found by scanning the whole answer for known emotion
    words) or `unparseable`."""
    raw: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    reason: str = ""


_PREFIX = re.compile(r"^\s*(?:\**\s*)?(?:emotions?(?:\s+expressed)?|answer|labels?|output)\s*\**\s*[:\-]\s*", re.I)
_HEAD_END = re.compile(r"[;\n]|\.(?:\s|$)|\s[-–—]\s|\s(?:because|as|since)\s", re.I)
_LIST_ITEM = re.compile(r"(?:^|\n)\s*(?:\d+[.)]|[-*•])\s+")
_WORD = re.compile(r"^[a-z][a-z\-']{1,29}$")
_STOP = {"and", "or", "the", "a", "an", "of", "emotion", "emotions", "user", "is", "are", "none", "both"}


def _clean(token: str) -> str:
    token = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", token)  # list markers
    return token.strip().strip("*_`\"'()[]{}.:!? ").lower()


def parse_answer(text: str | None) -> Parsed:
    """Answer text → Parsed. Head first ("happy, admiration; because ..."), else a scan for known words."""
    text = (text or "").strip()
    if not text:
        return Parsed("unparseable", reason="")
    body = _LIST_ITEM.sub(", ", _PREFIX.sub("", text, count=1)).lstrip(", ")  # "1. love\n2. joy" → "love, joy"
    m = _HEAD_END.search(body)
    head, reason = (body[: m.start()], body[m.end() :]) if m else (body, "")
    words = []
    for tok in re.split(r",|/|\band\b|&|\|", head):
        tok = _clean(tok)
        if _WORD.match(tok) and tok not in _STOP and tok not in words:
            words.append(tok)
    # A head that is a sentence ("The user is curious") is not a word list: fall back to the scan.
    if words and len(head.split()) <= 2 * len(words) + 2:
        words = words[:MAX_EMOTIONS]
        labels, unmapped = map_words(words)
        return Parsed("ok", words, labels, unmapped, reason.strip())
    found = []
    for tok in re.findall(r"[a-z][a-z\-']+", text.lower()):
        if tok in WORD_TO_TYPE and tok not in _STOP and tok not in found:
            found.append(tok)
    if found:
        words = found[:MAX_EMOTIONS]
        labels, _ = map_words(words)
        return Parsed("scanned", words, labels, [], text)
    return Parsed("unparseable", reason=text)
