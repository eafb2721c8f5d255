"""Offline entity linker: free text → KG entity ids (actors, directors, genres, companies, ...).

Aho-Corasick (pyahocorasick) over lower-cased entity names and aliases, then three rules:
1. matches must sit on word boundaries;
2. overlapping matches resolve to the longest (then the earliest);
3. ambiguous names are not linked: names shorter than 4 characters, single words on the stop-list of common
   English words or shorter than 6 characters, and single-word names written in lower case (a lower-case
   "madonna" may be a person, a lower-case "drive" is a word) — except genre aliases ("horror", "comedy"), which
   users write in lower case.
When one alias names several entities, the one with the most KG edges wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import ahocorasick

from .kg import KnowledgeGraph, strip_disambiguation


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    entity_id: int
    surface: str


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    text = resources.files("ecr_ray.data").joinpath("common_words.txt").read_text(encoding="utf-8")
    return frozenset(w.strip().lower() for w in text.split() if w.strip() and not w.startswith("#"))


def _genre_aliases(name: str) -> list[str]:
    """`Horror film` → horror, horror film(s), horror movie(s)."""
    base = name
    for suf in (" film", " fiction"):
        if name.lower().endswith(suf):
            base = name[: -len(suf)]
            break
    base = base.lower()
    return [base, f"{base} film", f"{base} films", f"{base} movie", f"{base} movies"]


class EntityLinker:
    def __init__(
        self, aliases: dict[str, list[int]], lowercase_ok: set[str], degree=None, single_word: set[str] | None = None
    ):
        self.lowercase_ok = lowercase_ok
        self.single_word = single_word or set()
        self._automaton = ahocorasick.Automaton()
        for alias, ids in aliases.items():
            best = max(ids, key=lambda i: (int(degree[i]) if degree is not None else 0, -i))
            self._automaton.add_word(alias, (alias, best))
        self.size = len(aliases)
        if self.size:
            self._automaton.make_automaton()

    @classmethod
    def from_kg(cls, kg: KnowledgeGraph, include_items: bool = False) -> EntityLinker:
        stop = common_words()
        genre_rel = kg.relation2id_by_name.get("genre")
        genres = set(kg.triples[kg.triples[:, 1] == genre_rel][:, 2].tolist()) if genre_rel is not None else set()
        aliases: dict[str, list[int]] = {}
        lowercase_ok: set[str] = set()
        single_word: set[str] = set()  # one content word ("The Rock"): must be capitalised in the text

        def add(alias: str, eid: int) -> None:
            alias = " ".join(alias.lower().split())
            if len(alias) < 4:
                return
            aliases.setdefault(alias, []).append(eid)

        for eid in kg.entity2id.values():
            if eid in kg.item_set and not include_items:
                continue
            name = strip_disambiguation(kg.names[eid])
            if not name:
                continue
            if eid in kg.item_set and name != kg.names[eid]:
                add(kg.names[eid], eid)  # "Seven (1995)": with its year a title is unambiguous, however short
            if eid in genres:  # users write genres in lower case: "a good horror movie"
                for a in _genre_aliases(name):
                    if " " in a or a not in stop:  # "family films" yes, bare "family" no
                        add(a, eid)
                        lowercase_ok.add(a)
                continue
            content = [w for w in name.lower().split() if w not in stop]
            if not content or (len(name.split()) == 1 and len(name) < 6):
                continue  # e.g. entities "Love", "The Game", "Mars": too ambiguous in chat
            add(name, eid)
            if len(content) == 1:
                single_word.add(" ".join(name.lower().split()))
        return cls(aliases, lowercase_ok, kg.degree, single_word)

    def link(self, text: str) -> list[Mention]:
        if not self.size or not text:
            return []
        low = text.lower()
        cands = []
        for end_idx, (alias, eid) in self._automaton.iter(low):
            start, end = end_idx - len(alias) + 1, end_idx + 1
            if start > 0 and (low[start - 1].isalnum() or low[start - 1] == "@"):
                continue
            if end < len(low) and low[end].isalnum():
                continue
            surface = text[start:end]
            one_word = " " not in alias or alias in self.single_word
            if one_word and alias not in self.lowercase_ok and not surface[:1].isupper():
                continue
            cands.append((start, end, eid, surface))
        out: list[Mention] = []
        # Longest first, then earliest: a kept match blocks every shorter one that overlaps it.
        for c in sorted(cands, key=lambda c: (-(c[1] - c[0]), c[0])):
            if all(c[1] <= m.start or c[0] >= m.end for m in out):
                out.append(Mention(*c))
        return sorted(out, key=lambda m: m.start)

    def link_ids(self, text: str) -> list[int]:
        """Entity ids in order of first mention, without repeats."""
        seen: dict[int, None] = {}
        for m in self.link(text):
            seen.setdefault(m.entity_id, None)
        return list(seen)
