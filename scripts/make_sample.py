#!/usr/bin/env python3
"""Write the demo's sample dataset (`ecr_ray/data/sample/`) as a slice of the real data in `../shared/data`.

    python scripts/make_sample.py [--source ../shared/data] [--out ecr_ray/data/sample]

What it takes (stdlib only, deterministic: two runs write byte-identical files):

- ReDial (CC BY 4.0): the train and test conversations in which the seeker asks for a genre in words ("something
  scary", "a funny movie", "animated", ...) and the recommender's suggestions are mostly of that genre (the movies'
  genres from `id2info.json`). A fixed number per genre, horror first, chosen by a hash of the conversation id: the
  demo's recommender learns from real dialogues what "scary" asks for. The raw JSON lines are copied unchanged.
- The movie catalogue (`movies_with_mentions.csv`, CC BY 4.0) and metadata (`id2info.json`, MIT): the rows of the
  movies those conversations mention, plus the movies the sample's reviews are about.
- The DBpedia sub-KG (CC BY-SA): those movies that have a KG entity, every edge from them, the entities at the
  other end, and the edges among the kept entities; entity ids renumbered 0..N-1 (in the order of the original ids),
  relations unchanged.
- The LLM emotion labels of the kept train conversations (CC BY 4.0, as ReDial), lines unchanged.
- `redial/invalid_examples/`: three kept conversations, each broken one way, for the loaders' error tests.

Not taken from the real data: the reviews (`reviews/imdb_reviews_ecr.jsonl`: the IMDb reviews are for research use
only, so the sample keeps its own, written by the project) and INSPIRED (`inspired/`: the project's own small
dialogues and KG); this script leaves both as they are and checks that every review's movie is a KG item of the slice.
It writes README.md (counts) and the attribution beside the data (ATTRIBUTION.md, licences/).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (theme, what the seeker writes, the id2info genres that answer it, train conversations, test conversations).
# A conversation counts for the first theme it fits, so horror is never counted as comedy.
THEMES = [
    ("horror", r"\b(horror|scary|scared?|creepy|frighten\w*|spooky|terrif\w*|slasher|haunt\w*)", {"horror"}, 90, 16),
    ("animation", r"\b(animat\w*|cartoon\w*|pixar|disney|kids?|children|family)\b", {"animation"}, 30, 6),
    ("comedy", r"\b(comed\w*|funny|laugh\w*|hilarious)", {"comedy"}, 40, 8),
    ("action", r"\b(action|superhero\w*|marvel|fight\w*)", {"action"}, 30, 6),
    ("romance", r"\b(romanc\w*|romantic|love stor\w*|chick flick|rom[- ]?com\w*)", {"romance"}, 20, 4),
    ("scifi", r"\b(sci-?fi|science fiction|space|aliens?)\b", {"sci-fi"}, 15, 4),
]
MIN_ON_THEME = 2  # suggestions of the theme's genre (with a KG entity) a conversation needs
MIN_SHARE = 0.6  # ... and their share of all its suggestions
MAX_MESSAGES = 30  # keep the demo's minutes: long chats add turns to encode, not much to learn
MENTION = re.compile(r"@(\d+)")
MOVIE_MAP = "redial_movieid2entity.json"
KG_FILES = ("entity2id.json", "relation2id.json", "relation_set.json", "dbpedia_subkg.json", "item_ids.json", MOVIE_MAP)

SOURCES = [  # file | records | source | licence (records filled in from the counts)
    (
        "redial/train_data.jsonl, test_data.jsonl",
        "{train} / {test} conversations",
        "ReDial (Li et al., NeurIPS 2018), ReDialData/website @849e9eb; the train lines via the public copies listed in"
        " `../shared/data/README.md`",
        "CC BY 4.0",
    ),
    ("redial/movies/movies_with_mentions.csv", "{movies} movies", "ReDial, ReDialData/website @849e9eb", "CC BY 4.0"),
    (
        "redial/movies/id2info.json",
        "{info} movies",
        "iEvaLM-CRS (Wang, Tang et al., 2023), txy77/iEvaLM-CRS @918ae38",
        "MIT (licences/MIT-iEvaLM-CRS.txt)",
    ),
    (
        "redial/kg/*.json",
        "{entities} entities, {edges} edges, {items} items",
        "DBpedia, as extracted for ReDial with UniCRS's scripts (BitbanChou/LLMKB @a3364e7; movie map derived from"
        " melaniejuwonss/LATTE2 @0fc7bbe)",
        "CC BY-SA 3.0",
    ),
    (
        "emotions/redial_llm_labels.jsonl",
        "{labels} turns",
        "the ecr-ray project's LLM emotion labels of ReDial train turns",
        "CC BY 4.0 (as ReDial)",
    ),
    (
        "reviews/imdb_reviews_ecr.jsonl",
        "{reviews} reviews",
        "written by the ecr-ray project (not IMDb reviews)",
        "Apache-2.0",
    ),
    (
        "inspired/",
        "{ins_train} / {ins_valid} dialogues",
        "written by the ecr-ray project in INSPIRED's UniCRS format",
        "Apache-2.0",
    ),
]

ATTRIBUTION = """# Attribution and licences of the sample data

The sample dataset is a small slice of public datasets, written by `scripts/make_sample.py` of the ecr-ray
repository (not part of the package). Changes made: a selection of conversations and of the movies and KG entities
they reference; the KG's entity ids renumbered 0..N-1; three conversations broken on purpose in
`redial/invalid_examples/`. Nothing else was edited.

{sources}
- **ReDial** — Raymond Li, Samira Kahou, Hannes Schulz, Vincent Michalski, Laurent Charlin, Chris Pal: "Towards
  Deep Conversational Recommendations", NeurIPS 2018. https://redialdata.github.io/website/ — licensed under the
  Creative Commons Attribution 4.0 International licence, https://creativecommons.org/licenses/by/4.0/ .
- **iEvaLM-CRS movie metadata** — Copyright (c) 2023 Xiaolei Wang, Xinyu Tang; MIT licence, full text in
  `licences/MIT-iEvaLM-CRS.txt`. https://github.com/txy77/iEvaLM-CRS
- **DBpedia** — https://www.dbpedia.org/ , data from Wikipedia; licensed under the Creative Commons
  Attribution-ShareAlike 3.0 licence, https://creativecommons.org/licenses/by-sa/3.0/ . The files under
  `redial/kg/` are an adaptation and are shared under the same licence.
- **Emotion labels** — made by the ecr-ray project with an LLM over ReDial's turns; shared under CC BY 4.0, as ReDial.
- **Reviews and INSPIRED-format dialogues** — written by the ecr-ray project, Apache-2.0 like the project. The IMDb
  reviews of the real data are for research use only and are not included.

No warranty is given by the licensors of these datasets (see each licence).
"""

MIT = """MIT License

Copyright (c) 2023 Xiaolei Wang, Xinyu Tang

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def rank(conversation_id: str) -> str:
    """A fixed pseudo-random order of conversations (the same on every machine)."""
    return hashlib.sha256(f"ecr-ray-sample:{conversation_id}".encode()).hexdigest()


def read_jsonl_lines(path: Path) -> list[tuple[str, dict]]:
    with open(path, encoding="utf-8") as f:
        return [(line.rstrip("\n"), json.loads(line)) for line in f if line.strip()]


def answers(conv: dict) -> dict:
    q = conv.get("initiatorQuestions") or conv.get("respondentQuestions") or {}
    return q if isinstance(q, dict) else {}


def theme_of(conv: dict, info: dict, in_kg: set[str]) -> str | None:
    """The first theme whose words the seeker writes and whose genre most of the suggestions have, or None."""
    seeker = conv["initiatorWorkerId"]
    said = " ".join(m["text"] for m in conv["messages"] if m["senderWorkerId"] == seeker).lower()
    suggested = [mid for mid, a in answers(conv).items() if a.get("suggested") == 1]
    for name, words, genres, _, _ in THEMES:
        if not re.search(words, said):
            continue
        on = [m for m in suggested if m in in_kg and set(info.get(m, {}).get("genre") or []) & genres]
        if len(on) >= MIN_ON_THEME and len(on) >= MIN_SHARE * len(suggested):
            return name
    return None


def select(rows: list[tuple[str, dict]], info: dict, in_kg: set[str], split: str) -> tuple[list, Counter]:
    """The kept (line, conversation) pairs of one split, in the file's order, and how many per theme."""
    quota = {name: (train if split == "train" else test) for name, _, _, train, test in THEMES}
    by_theme: dict[str, list] = {name: [] for name in quota}
    for _, conv in rows:
        if len(conv["messages"]) > MAX_MESSAGES:
            continue
        theme = theme_of(conv, info, in_kg)
        if theme:
            by_theme[theme].append((rank(conv["conversationId"]), conv["conversationId"]))
    keep = {cid for name, cands in by_theme.items() for _, cid in sorted(cands)[: quota[name]]}
    counts = Counter({name: min(len(c), quota[name]) for name, c in by_theme.items()})
    return [(line, conv) for line, conv in rows if conv["conversationId"] in keep], counts


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def kg_slice(kg_dir: Path, movie_map: dict, keep_movies: list[str]) -> tuple[dict, dict, list, dict, dict]:
    """(entity2id, subkg, item_ids, movie map, counts) of the kept movies' neighbourhood, ids renumbered."""
    e2i = json.loads((kg_dir / "entity2id.json").read_text(encoding="utf-8"))
    subkg = json.loads((kg_dir / "dbpedia_subkg.json").read_text(encoding="utf-8"))
    rel2id = json.loads((kg_dir / "relation2id.json").read_text(encoding="utf-8"))
    loop = rel2id["self_loop"]
    all_items = json.loads((kg_dir / "item_ids.json").read_text(encoding="utf-8"))
    items = {movie_map[m]["entity_id"] for m in keep_movies if m in movie_map}
    keep = set(items)
    for h in items:
        keep.update(t for r, t in subkg.get(str(h), []) if r != loop)
    new = {old: i for i, old in enumerate(sorted(keep))}
    uri_of = {i: uri for uri, i in e2i.items()}
    entity2id = {uri_of[old]: new[old] for old in sorted(keep)}
    out_kg: dict[str, list] = {}
    edges = 0
    for h in sorted(keep):
        if str(h) not in subkg:
            continue
        kept = [[r, new[t]] for r, t in subkg[str(h)] if t in keep]
        out_kg[str(new[h])] = kept
        edges += sum(r != loop for r, _ in kept)
    item_ids = [new[i] for i in all_items if i in items]
    m2e = {
        m: {**movie_map[m], "entity_id": new[movie_map[m]["entity_id"]]}
        for m in sorted(movie_map, key=int)
        if m in set(keep_movies)
    }
    return entity2id, out_kg, item_ids, m2e, {"entities": len(entity2id), "edges": edges, "items": len(item_ids)}


def invalid_examples(kept: list[tuple[str, dict]]) -> dict[str, str]:
    """Three of the kept train conversations, each broken one way (the loaders' error tests read them)."""
    small = sorted(kept, key=lambda lc: (len(lc[0]), lc[1]["conversationId"]))[:4]
    (l1, _), (l2, c2), (l3, _), (_, c4) = small
    broken = l2[: len(l2) // 2]  # a record cut in half: line 2 is not JSON
    missing = {k: v for k, v in c4.items() if k != "messages"}
    unknown = json.loads(l1)
    unknown["messages"][0]["text"] += " What about @123456789? A friend mentioned it."
    assert "123456789" not in unknown["movieMentions"] and c2
    return {
        "malformed_line.jsonl": f"{l1}\n{broken}\n{l3}\n",
        "missing_field.jsonl": json.dumps(missing) + "\n",
        "unknown_movie.jsonl": json.dumps(unknown) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data", help="the real data directory")
    ap.add_argument("--out", type=Path, default=ROOT / "ecr_ray" / "data" / "sample")
    args = ap.parse_args(argv)
    src, out = args.source, args.out
    red = src / "redial"
    info = json.loads((red / "movies" / "id2info.json").read_text(encoding="utf-8"))
    movie_map = json.loads((red / "kg" / MOVIE_MAP).read_text(encoding="utf-8"))
    in_kg = set(movie_map)

    kept, themes = {}, {}
    for split in ("train", "test"):
        kept[split], themes[split] = select(read_jsonl_lines(red / f"{split}_data.jsonl"), info, in_kg, split)
        write(out / "redial" / f"{split}_data.jsonl", "".join(line + "\n" for line, _ in kept[split]))
    for name, text in invalid_examples(kept["train"]).items():
        write(out / "redial" / "invalid_examples" / name, text)

    # The movies: every one a kept conversation mentions, and those the sample's reviews are about.
    names = {v["name"]: m for m, v in movie_map.items()}
    reviews = read_jsonl_lines(out / "reviews" / "imdb_reviews_ecr.jsonl")
    review_movies = {names[r["rec"][0]] for _, r in reviews if r["rec"][0] in names}
    missing = sorted({r["rec"][0] for _, r in reviews} - set(names))
    if missing:
        sys.exit(f"error: the sample's reviews are about movies without a KG entity: {missing}")
    convs = [c for split in kept.values() for _, c in split]
    mentioned = {m for c in convs for m in c["movieMentions"]}
    mentioned |= {m for c in convs for msg in c["messages"] for m in MENTION.findall(msg["text"])}
    movies = mentioned | review_movies

    with open(red / "movies" / "movies_with_mentions.csv", encoding="utf-8", newline="") as f:
        raw_rows = f.read().split("\r\n")
    header, rows = raw_rows[0], [r for r in raw_rows[1:] if r]
    kept_rows = [r for r in rows if next(csv.reader(io.StringIO(r)))[0] in movies]
    write(out / "redial" / "movies" / "movies_with_mentions.csv", "\r\n".join([header, *kept_rows, ""]))
    write(
        out / "redial" / "movies" / "id2info.json",
        json.dumps({m: v for m, v in info.items() if m in movies}, ensure_ascii=False),
    )

    kg_out = out / "redial" / "kg"
    entity2id, subkg, item_ids, m2e, kg_counts = kg_slice(red / "kg", movie_map, sorted(movies, key=int))
    write(kg_out / "entity2id.json", json.dumps(entity2id, ensure_ascii=False))
    write(kg_out / "dbpedia_subkg.json", json.dumps(subkg))
    write(kg_out / "item_ids.json", json.dumps(item_ids))
    write(kg_out / MOVIE_MAP, json.dumps(m2e, ensure_ascii=False))
    for name in ("relation2id.json", "relation_set.json"):
        write(kg_out / name, (red / "kg" / name).read_text(encoding="utf-8"))

    train_ids = {c["conversationId"] for _, c in kept["train"]}
    labels = [
        line
        for line, r in read_jsonl_lines(src / "emotions" / "redial_llm_labels.jsonl")
        if r["conversation_id"] in train_ids
    ]
    write(out / "emotions" / "redial_llm_labels.jsonl", "".join(line + "\n" for line in labels))

    counts = {
        "train": len(kept["train"]),
        "test": len(kept["test"]),
        "messages": sum(len(c["messages"]) for split in kept.values() for _, c in split),
        "movies": len(kept_rows),
        "info": sum(m in info for m in movies),
        **kg_counts,
        "labels": len(labels),
        "reviews": len(reviews),
        "ins_train": len(read_jsonl_lines(out / "inspired" / "train_data_dbpedia.jsonl")),
        "ins_valid": len(read_jsonl_lines(out / "inspired" / "valid_data_dbpedia.jsonl")),
    }
    rows = ["| file | records | source | licence |", "|---|---|---|---|"]
    sources = (
        "\n".join(rows + ["| " + " | ".join(cell.format(**counts) for cell in row) + " |" for row in SOURCES]) + "\n"
    )
    write(out / "ATTRIBUTION.md", ATTRIBUTION.format(sources=sources))
    write(out / "licences" / "MIT-iEvaLM-CRS.txt", MIT)
    write(out / "README.md", readme(counts, themes, sources))
    print(json.dumps({"counts": counts, "themes": themes}, indent=1))
    return 0


def readme(counts: dict, themes: dict, sources: str) -> str:
    per_theme = ", ".join(f"{t} {themes['train'][t]} / {themes['test'][t]}" for t, *_ in THEMES)
    return f"""# ecr-ray sample data

The data of the offline `demo` recipe and of the unit tests: a slice of the real ReDial data (the layout and raw
schemas of `../shared/data`, so the same loaders read both), written by `scripts/make_sample.py` in the repository
(`python scripts/make_sample.py --source ../shared/data`). Attribution and licences: ATTRIBUTION.md.

The conversations are real ReDial dialogues in which the seeker asks for a genre in words and the recommender
answers with films of it, so that the demo learns what "scary" or "funny" asks for. Train / test conversations per
genre: {per_theme}.

{sources}
Layout:

```
redial/
  train_data.jsonl, test_data.jsonl      raw ReDial schema, lines as in the release
  movies/movies_with_mentions.csv        movieId,movieName,nbMentions (CRLF, as the real file)
  movies/id2info.json                    name, genre, plot, director, writer, star, imdb_id
  kg/entity2id.json, relation2id.json, relation_set.json, dbpedia_subkg.json, item_ids.json,
     redial_movieid2entity.json          UniCRS format; the 24 relations + self_loop of the real KG
  invalid_examples/                      malformed_line.jsonl (line 2 is a record cut in half),
                                         missing_field.jsonl (no "messages"),
                                         unknown_movie.jsonl (mentions @123456789, in neither
                                         movieMentions nor the catalogue)
reviews/imdb_reviews_ecr.jsonl           context, resp, rec, knowledge_used (the project's own reviews)
emotions/redial_llm_labels.jsonl         the LLM labels of the train conversations' seeker turns
inspired/                                the project's own INSPIRED-format dialogues and KG
```

{counts["messages"]} messages in all; every review's movie is a KG item of the slice.
"""


if __name__ == "__main__":
    sys.exit(main())
