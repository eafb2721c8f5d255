"""Prompt and reply texts: the emotion-aligned generation prompt (Eq. 8), the recommendation sentence and the
final reply (section 4.3.2), the baseline prompts (Appendix E.1) and the LLM scorer prompts (Appendix E.2).

The generation prompt follows the authors' Llama-2-Chat variant: an Alpaca-style instruction (system message) and
the knowledge lines `Movie Name:` / `Related Entities:` / `Related Knowledge from KG:` / `First Sentence:` (user
message), rendered with the base model's own chat template; the training target is the emotional review.
"""

from __future__ import annotations

import random
import re

from .config import EMOTIONS, KNOWLEDGE_FORMATS

INSTRUCTION = (
    "You are a recommender chatting with the user to provide movie recommendation. Please continue "
    "generating based on the First Sentence. Please utilize the information about Movie Name, Related "
    "Entities, and Related Knowledge from KG."
)
ITEM_PLACEHOLDERS = ("<movie>", "[ITEM]", "<mask>")


def select_knowledge(
    entities: list, triples: list, num_entities: int, num_triples: int, rng: random.Random
) -> tuple[list, list]:
    """pn_e review entities and pn_t triples (any items: strings, (triple, tail) pairs), chosen at random (section
    4.3.1), kept in their stored order."""

    def pick(xs: list, n: int) -> list:
        if len(xs) <= n:
            return list(xs)
        keep = set(rng.sample(range(len(xs)), n))
        return [x for i, x in enumerate(xs) if i in keep]

    return pick(entities, num_entities), pick(triples, num_triples)


def prompt_knowledge(
    entities: list[str],
    triples: list[str],
    tails: list[str],
    num_entities: int,
    num_triples: int,
    knowledge_format: str,
    rng: random.Random,
) -> tuple[list[str], list[str]]:
    """The (entities, triples) lines of one Eq. 8 prompt, for training and inference alike: pn_e entities and pn_t
    triples chosen by `select_knowledge` (`tails[i]` is the tail entity of `triples[i]`). Format `triples` keeps
    them; `entities` (Appendix B.2: "remove triple-format knowledge and integrate its tail entities into the
    entity-format knowledge, pn_e = pn_t + pn_e") returns no triple and the chosen triples' tails after the chosen
    entities, each name once. Both formats draw the same choices from the same `rng`."""
    if len(tails) != len(triples):
        raise ValueError(f"prompt_knowledge: {len(triples)} triples but {len(tails)} tails")
    if knowledge_format not in KNOWLEDGE_FORMATS:
        raise ValueError(f"knowledge_format: expected one of {KNOWLEDGE_FORMATS}, got {knowledge_format!r}")
    ents, picked = select_knowledge(entities, list(zip(triples, tails)), num_entities, num_triples, rng)
    if knowledge_format == "entities":
        return list(dict.fromkeys([*ents, *(tail for _, tail in picked)])), []
    return ents, [t for t, _ in picked]


def knowledge_text(movie_name: str, entities: list[str], triples: list[str], first_sentence: str) -> str:
    """The four input lines of Eq. 8, as in the authors' `knowledge_used` field ("None" when empty)."""
    return (
        f"Movie Name: {movie_name}\n"
        f"Related Entities: {', '.join(entities) or 'None'}\n"
        f"Related Knowledge from KG: {', '.join(triples) or 'None'}\n"
        f"First Sentence: {first_sentence}"
    )


def generation_messages(movie_name: str, entities: list[str], triples: list[str], first_sentence: str) -> list[dict]:
    return [
        {"role": "system", "content": INSTRUCTION},
        {"role": "user", "content": knowledge_text(movie_name, entities, triples, first_sentence)},
    ]


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """Messages → the model's chat-template text, ending where the assistant's answer begins."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Models without a chat template (DialoGPT-style): plain Alpaca layout.
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    user = "\n".join(m["content"] for m in messages if m["role"] != "system")
    return f"### Instruction:\n{system}\n\n### Input:\n{user}\n\n### Response:\n"


def fill_item(sentence: str, item_name: str) -> str:
    """The recommendation response with the recommended item filled in (UniCRS writes `<movie>` placeholders)."""
    for p in ITEM_PLACEHOLDERS:
        sentence = sentence.replace(p, item_name)
    return sentence


RECOMMEND_TEMPLATES = {  # the recommendation sentence, chosen by the last user turn's strongest emotion
    "negative": "Sorry that one didn't work for you. How about {name}?",
    "like": "Since you enjoyed that, you might also like {name}.",
    "happy": "Glad to hear it! You might also like {name}.",
    "grateful": "You're welcome! Another one you may enjoy is {name}.",
    "agreement": "Great, then I'd also suggest {name}.",
    "nostalgia": "If you love the classics, try {name}.",
    "curious": "Here's one worth a look: {name}.",
    "surprise": "Here's one that might surprise you: {name}.",
}
DEFAULT_TEMPLATE = "I think you would enjoy {name}."
NO_ITEMS = "Tell me a bit more about movies you like, and I'll find something for you."


def recommendation_sentence(name: str, last_user_probs: list[float] | None) -> str:
    """The recommendation response u_r for the served reply: a template chosen by the strongest emotion of the
    user's last turn, the recommended item filled in."""
    label = (
        EMOTIONS[max(range(len(EMOTIONS)), key=lambda i: last_user_probs[i])] if last_user_probs is not None else None
    )
    return RECOMMEND_TEMPLATES.get(label, DEFAULT_TEMPLATE).format(name=name)


def context_turn(names: list[str]) -> str:
    """The recommender's turn a session keeps for the next request's context: the items the reply named and nothing
    else it said (a generated u_r may also name people or genres, which the recommender would link as if said)."""
    return DEFAULT_TEMPLATE.format(name=" or ".join(names)) if names else NO_ITEMS


def compose_response(first_sentence: str, empathetic: str) -> str:
    """Final response (section 4.3.2): recommendation response + emotion-aligned response."""
    first, emp = first_sentence.strip(), empathetic.strip()
    if not first:
        return emp
    if first[-1] not in ".!?":
        first += "."
    return f"{first} {emp}".strip()


# ----------------------------------------------------------------------------- Appendix E.1 baselines


def turn_line(role: str, text: str) -> str:
    """One dialogue turn as every prompt and the recommender's text encoder show it: "User: ..." or
    "Recommender: ..." (any role but `user` is the recommender)."""
    return f"{'User' if role == 'user' else 'Recommender'}: {text}"


def as_dialogue(context: list[str]) -> list[dict]:
    """Context lines ("User: ...", "Recommender: ...", as samples.parquet keeps them; `turn_line` written back) → the
    dialogue a client sends to Serve."""
    out = []
    for line in context:
        role, _, text = line.partition(": ")
        out.append({"role": "user" if role == "User" else "recommender", "text": text})
    return out


def format_history(dialogue: list[dict] | list[str]) -> str:
    """[HISTORY]: one line per turn (`turn_line`; strings are taken as already prefixed)."""
    return "\n".join(t if isinstance(t, str) else turn_line(t["role"], t["text"]) for t in dialogue)


BASELINE_PROMPTS = {
    # GPT-3.5-turbo-instruct and GPT-3.5-turbo
    "gpt": (
        "{history}\n\nYou are the recommender in the above conversation chatting with the user. Generate a "
        "response to provide recommendations. Please only recommend the movie {item} and don't mention other "
        "movies."
    ),
    # Llama 2-7B-Chat
    "llama": (
        "{history}\n\nYou are a recommender chatting with the user to provide recommendations. Please only "
        "recommend the movie {item} and don't mention other movies."
    ),
}


def baseline_messages(history: list[dict] | list[str], item: str, style: str = "llama") -> list[dict]:
    if style not in BASELINE_PROMPTS:
        raise ValueError(f"baseline style: expected one of {sorted(BASELINE_PROMPTS)}, got {style!r}")
    return [{"role": "user", "content": BASELINE_PROMPTS[style].format(history=format_history(history), item=item)}]


# ----------------------------------------------------------------------------- Appendix E.2 scorer

METRICS = ("emo_int", "emo_pers", "log_pers", "info", "life")
METRIC_NAMES = {
    "emo_int": "Emotional Intensity",
    "emo_pers": "Emotional Persuasiveness",
    "log_pers": "Logic Persuasiveness",
    "info": "Informativeness",
    "life": "Lifelikeness",
}
_DEFINITIONS = {
    "emo_int": (
        "Emotional Intensity refers to the strength and depth of emotions conveyed in a response, "
        "reflecting how powerfully it communicates feelings or emotional states."
    ),
    "emo_pers": (
        "Emotional Persuasiveness refers to the ability of the response to connect with the user on an "
        "emotional level, influencing their feelings effectively."
    ),
    "log_pers": (
        "Logic Persuasiveness refers to how well the response uses logical reasoning and coherent "
        "arguments to convincingly address the given scenario."
    ),
    "info": "Informativeness refers to how much relevant and useful information the response provides.",
    "life": (
        "Lifelikeness refers to how vivid and engaging the responses are, indicating the extent to which they "
        "resemble natural human communication."
    ),
}
_LEAST = {
    "emo_int": "emotional intensity",
    "emo_pers": "emotional persuasiveness",
    "log_pers": "logic persuasiveness",
    "info": "informativeness",
    "life": "lifelikeness",
}
_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


def scorer_prompt(metric: str, named_responses: list[tuple[str, str]], scenario: str = "") -> str:
    """Appendix E.2 prompt for one metric. `named_responses`: (pseudonym, response) in the order shown.
    `scenario` (the dialogue history) is shown before the responses when given — the paper's template leaves the
    scenario implicit; the responses alone cannot be judged as answers to it."""
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    n = len(named_responses)
    count = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    name = METRIC_NAMES[metric]
    text = (
        f"We have {count} responses to a given scenario. Please evaluate and score each response based on its "
        f"\u201c{name}.\u201d {_DEFINITIONS[metric]} The score should be on a scale from 0 to 9, where 0 is the "
        f"least {_LEAST[metric]} and 9 is the most. Only answer the score in the form of "
        f"\u201cresponse name: score.\u201d\n"
    )
    if scenario:
        text += f"\nScenario:\n{scenario}\n"
    text += "\n" + "\n".join(f"{pseudo}: {' '.join(resp.split())}" for pseudo, resp in named_responses)
    return text


_SCORE_LINE = re.compile(r"^\W*(?P<name>[A-Za-z][\w ]*?)\W*[:\-=]\s*\W*(?P<score>\d+(?:\.\d+)?)")


def parse_scores(answer: str, names: list[str]) -> dict[str, float]:
    """Parse "response name: score" lines; names are matched case-insensitively; scores outside 0-9 are
    dropped (and so missing from the result, which the caller reports)."""
    wanted = {n.lower(): n for n in names}
    out: dict[str, float] = {}
    for line in answer.splitlines():
        m = _SCORE_LINE.match(line.strip())
        if not m:
            continue
        key = m.group("name").strip().lower()
        score = float(m.group("score"))
        if key in wanted and 0 <= score <= 9 and wanted[key] not in out:
            out[wanted[key]] = score
    return out
