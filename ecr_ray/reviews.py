"""The emotional review database (paper section 4.1.2, Appendix A.2): filter reviews, link entities, attach knowledge.

Filters (Appendix A.2, thresholds from the authors' pipeline, see `../shared/notes/ecr-method.md`):
- word repetition rate ≤ 0.5 (repetition rate = 1 − distinct words / words);
- minimum words: 20 for the small-model variant, 120 for the Llama variant;
- ≥ 4 first-person pronouns (Llama variant only);
- helpfulness ≥ 1 (small) / ≥ 5 (Llama), applied only when the reviews file has a helpfulness field;
then each kept review is split into sentences and trimmed, at a sentence end, to the variant's maximum length
(150 / 300 words). Every dropped review is counted under the filter that dropped it: nothing is removed silently.

Knowledge per movie: review entities mentioned ≥ 2 times over all its reviews (most frequent first), and KG triples
with the movie as head over starring / writer / productionCompany / director / musicComposer, written
"{movie}'s {relation} is {entity}".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .data import reviews_file
from .data.errors import DataError
from .data.kg import KnowledgeGraph, strip_disambiguation

KNOWLEDGE_RELATIONS = ("starring", "writer", "productionCompany", "director", "musicComposer")
HELPFULNESS_FIELDS = ("helpfulness", "helpful_votes", "votes", "helpful")
_WORD = re.compile(r"[a-z0-9']+")
_FIRST_PERSON = frozenset("i me my mine myself i'm i've i'd i'll im ive".split())
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


def helpfulness(row: dict) -> float | None:
    for f in HELPFULNESS_FIELDS:
        if f in row and row[f] is not None:
            return float(row[f])
    return None


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


def read_reviews(path: Path, item_ids_by_name: dict[str, int], skip_invalid: bool = False) -> tuple[list[dict], Counter]:
    """Read a reviews JSONL (fields `resp` review text, `rec` [movie name], `context` ["User: ..."], optional
    helpfulness) → raw rows {movie_name, entity_id, review, first_sentence, helpfulness}, plus drop counts."""
    return reviews_file.read_reviews(path, item_ids_by_name, skip_invalid)


def apply_filters(rows: list[dict], f: ReviewFilter) -> tuple[list[dict], Counter]:
    kept, dropped = [], Counter()
    for r in rows:
        text, why = filter_review(r["review"], r["helpfulness"], f)
        if why:
            dropped[why] += 1
        else:
            kept.append({**r, "review": text})
    return kept, dropped


def link_rows(rows: list[dict], linker, names: list[str]) -> list[dict]:
    """Add `mentions` (every linked mention, in order: counts matter per movie) and `entities` / `entity_names`
    (distinct, in order of first mention)."""
    out = []
    for r in rows:
        mentions = [m.entity_id for m in linker.link(r["review"])]
        ids = list(dict.fromkeys(mentions))
        out.append({**r, "mentions": mentions, "entities": ids,
                    "entity_names": [strip_disambiguation(names[i]) for i in ids]})
    return out


def describe_triple(kg: KnowledgeGraph, h: int, r: int, t: int) -> str:
    return f"{kg.names[h]}'s {kg.relation_names[r]} is {strip_disambiguation(kg.names[t])}"


def movie_triples(kg: KnowledgeGraph, movie: int) -> list[str]:
    return [describe_triple(kg, *t) for t in kg.triples_for(movie, KNOWLEDGE_RELATIONS)]


def movie_knowledge(reviews: list[dict], kg: KnowledgeGraph, min_mentions: int = 2) -> list[dict]:
    """One row per movie: review entities mentioned ≥ `min_mentions` times over its reviews, and its triples."""
    counts: dict[int, Counter] = {}
    for r in reviews:
        counts.setdefault(r["entity_id"], Counter()).update(r.get("mentions", r["entities"]))
    rows = []
    for movie, c in sorted(counts.items()):
        ents = [e for e, n in sorted(c.items(), key=lambda x: (-x[1], x[0])) if n >= min_mentions]
        rows.append({"entity_id": movie, "movie_name": kg.names[movie], "review_entities": ents,
                     "review_entity_names": [strip_disambiguation(kg.names[e]) for e in ents],
                     "triples": movie_triples(kg, movie)})
    return rows


# ----------------------------------------------------------------------------- the whole stage

def _schemas():
    import pyarrow as pa

    reviews = pa.schema([
        ("entity_id", pa.int64()), ("movie_name", pa.string()), ("review", pa.string()),
        ("entities", pa.list_(pa.int64())), ("entity_names", pa.list_(pa.string())),
        ("first_sentence", pa.string()),  # the dialogue line the review answers: "First Sentence:" in training
    ])
    knowledge = pa.schema([
        ("entity_id", pa.int64()), ("movie_name", pa.string()), ("review_entities", pa.list_(pa.int64())),
        ("review_entity_names", pa.list_(pa.string())), ("triples", pa.list_(pa.string())),
    ])
    return reviews, knowledge


class _LinkBatch:
    """Ray Data actor: builds the linker once, links a batch of reviews."""

    def __init__(self, cfg):
        from .data.linker import EntityLinker
        from .data.tables import load_dataset_kg

        kg = load_dataset_kg(cfg)
        self.linker, self.names = EntityLinker.from_kg(kg), kg.names

    def __call__(self, batch: dict) -> dict:
        import pyarrow as pa

        rows = [{"row": i, "review": t} for i, t in zip(batch["row"].to_pylist(), batch["review"].to_pylist())]
        linked = link_rows(rows, self.linker, self.names)
        return pa.table({"row": [r["row"] for r in linked],
                         "mentions": pa.array([r["mentions"] for r in linked], pa.list_(pa.int64()))})


def link_all(rows: list[dict], cfg, engine: str = "ray") -> list[dict]:
    """Link every review: `ray` = Ray Data actor pool of `generator.link_workers`; `local` = a plain loop."""
    from .data.linker import EntityLinker
    from .data.tables import load_dataset_kg

    kg = load_dataset_kg(cfg)
    if engine == "local":
        return link_rows(rows, EntityLinker.from_kg(kg), kg.names)
    import ray

    ds = ray.data.from_items([{"row": i, "review": r["review"]} for i, r in enumerate(rows)])
    ds = ds.map_batches(_LinkBatch, fn_constructor_kwargs={"cfg": cfg}, batch_size=64, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=cfg.generator.link_workers))
    mentions = {r["row"]: list(r["mentions"]) for r in ds.take_all()}
    if len(mentions) != len(rows):
        raise RuntimeError(f"linking returned {len(mentions)} of {len(rows)} reviews")
    out = []
    for i, r in enumerate(rows):
        ids = list(dict.fromkeys(mentions[i]))
        out.append({**r, "mentions": mentions[i], "entities": ids,
                    "entity_names": [strip_disambiguation(kg.names[e]) for e in ids]})
    return out


def review_config_hash(cfg) -> str:
    import hashlib

    g = cfg.generator
    blob = json.dumps({"data": cfg.section_hash("data"), "reviews_file": g.reviews_file,
                       "review_filter": g.review_filter, "min_entity_mentions": g.min_entity_mentions},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_review_db(cfg, engine: str = "ray", out_dir: Path | None = None) -> dict:
    """Reviews file → `<run_dir>/reviews/{reviews,movie_knowledge}.parquet` + manifest.json. Returns the manifest."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .data.tables import load_dataset_kg, sha256_file

    t0 = time.perf_counter()
    data_dir = cfg.data.resolved_dir()
    path = cfg.generator.reviews_path(data_dir)
    if not path.exists():
        raise DataError(path, None, "<file>", "reviews file not found (generator.reviews_file)")
    kg = load_dataset_kg(cfg)
    by_name = {" ".join(n.split()): i for i, n in kg.item_names.items()} or {kg.names[i]: int(i) for i in kg.item_ids}
    raw, dropped = read_reviews(path, by_name, cfg.data.skip_invalid)
    f = VARIANTS[cfg.generator.review_filter]
    kept, filtered = apply_filters(raw, f)
    dropped.update(filtered)
    linked = link_all(kept, cfg, engine)
    knowledge = movie_knowledge(linked, kg, cfg.generator.min_entity_mentions)

    out_dir = Path(out_dir or cfg.run_path / "reviews")
    out_dir.mkdir(parents=True, exist_ok=True)
    rs, ks = _schemas()
    pq.write_table(pa.Table.from_pylist([{k: r[k] for k in rs.names} for r in linked], schema=rs),
                   out_dir / "reviews.parquet")
    pq.write_table(pa.Table.from_pylist(knowledge, schema=ks), out_dir / "movie_knowledge.parquet")
    n_words = [len(r["review"].split()) for r in linked]
    manifest = {
        "stage": "reviews",
        "config_hash": review_config_hash(cfg),
        "inputs": {str(path): sha256_file(path)},
        "filter": {"variant": cfg.generator.review_filter, **f.__dict__,
                   "helpfulness_field_present": any(r["helpfulness"] is not None for r in raw)},
        "counts": {
            "read": len(raw) + dropped["movie_not_in_kg"] + dropped["invalid_row"],
            "removed": {k: dropped.get(k, 0) for k in
                        ("invalid_row", "movie_not_in_kg", "helpfulness", "min_words", "repetition", "first_person")},
            "kept": len(linked),
            "movies": len(knowledge),
            "mean_words": round(sum(n_words) / max(len(n_words), 1), 1),
            "linked_mentions_per_review": round(sum(len(r["mentions"]) for r in linked) / max(len(linked), 1), 2),
            "movies_with_review_entities": sum(bool(k["review_entities"]) for k in knowledge),
            "movies_with_triples": sum(bool(k["triples"]) for k in knowledge),
        },
        "engine": engine,
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def load_knowledge(run_dir: Path) -> dict[int, dict]:
    """movie entity id → its movie_knowledge row."""
    import pyarrow.parquet as pq

    path = Path(run_dir) / "reviews" / "movie_knowledge.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the review DB first (`ecr-ray build_reviews`)")
    return {r["entity_id"]: r for r in pq.read_table(path).to_pylist()}
