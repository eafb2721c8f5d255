"""Generate the bad-input corpus: `tests/data/bad_inputs/<loader>/<case>.<ext>` plus `cases.json`.

Each file is a small piece of the packaged sample (`ecr_ray/data/sample/`) with exactly one corruption: the first
three records of a JSONL file (line 2 corrupted unless said otherwise), or a whole side file (KG json, movies csv).
`cases.json` says, per case, which loader reads it, the file it stands in for, and the expected outcome:

- `strict`: the DataError, as {field, line} (line null: a whole-file problem);
- `skip_invalid`: {"skipped_lines": [...]} (those rows skipped and reported, every other row as in the clean
  file) or {"error": {field, line}} (still an error: empty files, side files, a file with no valid row left).

The KG cases stand in for one file of a small KG: `kg_base/`, the sample KG's first `KG_BASE_ENTITIES` entities and
the edges, items and movies among them (a whole-file case is then a few KB, not a copy of the sample's KG).

Run from the repository root: `python tests/data/make_bad_inputs.py` (stdlib only, deterministic). The test
`test_bad_inputs.py` checks the committed files are exactly what this writes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "bad_inputs"
SAMPLE = HERE.parents[1] / "ecr_ray" / "data" / "sample"
MOVIE_MAP = "redial_movieid2entity.json"
KG_BASE = "kg_base"  # the small, clean KG directory the KG cases corrupt one file of
KG_BASE_ENTITIES = 300
DEPTH = 20_000  # nesting of the too-deep cases: 20x Python's default recursion limit
BAD = 2  # the corrupted line of the JSONL cases

# The file each loader reads, relative to a data directory, and the JSONL base (the first three records).
TARGETS = {
    "redial": "redial/train_data.jsonl",
    "inspired": "inspired/train_data_dbpedia.jsonl",
    "reviews": "reviews/imdb_reviews_ecr.jsonl",
    "labels": "emotions/redial_llm_labels.jsonl",
    "movies": "redial/movies/movies_with_mentions.csv",
}
JSONL = ("redial", "inspired", "reviews", "labels")
# A string field and an integer (or number) field of each JSONL format, for the cases every loader gets.
STRING_FIELD = {
    "redial": ("messages", 0, "text"),
    "inspired": (0, "text"),
    "reviews": ("resp",),
    "labels": ("conversation_id",),
}


@dataclass
class Case:
    loader: str
    name: str
    what: str
    content: bytes
    field: str
    line: int | None
    target: str
    skipped_lines: list[int] | None = None
    """Lines skipped under skip_invalid; None = still an error (`skip_error`, default the strict one)."""
    skip_error: tuple[str, int | None] | None = None
    ext: str = field(init=False)

    def __post_init__(self):
        self.ext = Path(self.target).suffix

    @property
    def file(self) -> str:
        return f"{self.loader}/{self.name}{self.ext}"

    def manifest(self) -> dict:
        skip = (
            {"skipped_lines": self.skipped_lines}
            if self.skipped_lines is not None
            else {"error": dict(zip(("field", "line"), self.skip_error or (self.field, self.line)))}
        )
        return {
            "loader": self.loader,
            "case": self.name,
            "what": self.what,
            "file": self.file,
            "target": self.target,
            "strict": {"field": self.field, "line": self.line},
            "skip_invalid": skip,
        }


# ----------------------------------------------------------------------------- building blocks


def base_lines(loader: str) -> list[bytes]:
    """The clean base of a JSONL loader: the sample file's first three lines."""
    return (SAMPLE / TARGETS[loader]).read_bytes().split(b"\n")[:3]


def join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def field_name(path: tuple) -> str:
    """("messages", 0, "text") → `messages[0].text`; (0, "text") → `[0].text`."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def put(obj: Any, path: tuple, value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def dump(obj: Any) -> bytes:
    """UTF-8 JSON; a lone surrogate (not encodable) is written as the JSON escape `\\ud800`."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "backslashreplace")


def edit_line(lines: list[bytes], n: int, change: Callable[[Any], Any]) -> list[bytes]:
    """Line n (1-based) parsed, changed in place by `change`, written back; the other lines byte for byte."""
    rec = json.loads(lines[n - 1])
    change(rec)
    return [*lines[: n - 1], dump(rec), *lines[n:]]


def set_field(lines: list[bytes], path: tuple, value: Any, n: int = BAD) -> bytes:
    return join(edit_line(lines, n, lambda rec: put(rec, path, value)))


def set_raw(lines: list[bytes], path: tuple, literal: bytes, n: int = BAD) -> bytes:
    """A field written as a literal JSON can't produce (`1e400`, a 5000-digit integer): via a placeholder."""
    marker = "@@placeholder@@"
    return set_field(lines, path, marker, n).replace(json.dumps(marker).encode(), literal)


def jsonl_case(
    loader: str, name: str, what: str, content: bytes, path: tuple | str, line: int | None = BAD, **kw
) -> Case:
    """A JSONL case; unless told otherwise the bad line is skipped under skip_invalid."""
    fname = path if isinstance(path, str) else field_name(path)
    kw.setdefault("skipped_lines", [line] if line is not None else None)
    return Case(loader, name, what, content, fname, line, TARGETS[loader], **kw)


# ----------------------------------------------------------------------------- cases every JSONL loader gets


def first_key(rec: Any) -> str:
    return next(iter(rec[0] if isinstance(rec, list) else rec))


def repeat_first_key(line: bytes) -> bytes:
    """`{"a": 1, ...}` → `{"a": null, "a": 1, ...}` (in the first object of the line)."""
    key = first_key(json.loads(line))
    i = line.index(b"{") + 1
    return line[:i] + json.dumps(key).encode() + b": null, " + line[i:]


def common_cases(loader: str) -> list[Case]:
    lines = base_lines(loader)
    text = STRING_FIELD[loader]
    name = field_name(text)
    cafe = set_field(lines, text, "café au lait")
    return [
        jsonl_case(
            loader,
            "non_utf8_byte",
            "a 0xff byte in a string (not UTF-8)",
            cafe.replace("é".encode(), b"\xff"),
            "<encoding>",
        ),
        jsonl_case(
            loader,
            "latin1_file",
            "the file saved as latin-1 (line 2 has an é)",
            cafe.decode("utf-8").encode("latin-1"),
            "<encoding>",
        ),
        jsonl_case(
            loader,
            "deep_nesting",
            f"{DEPTH} nested arrays on one line",
            join([lines[0], b"[" * DEPTH + b"]" * DEPTH, *lines[2:]]),
            "<json>",
        ),
        jsonl_case(
            loader, "lone_surrogate", 'a lone surrogate "\\ud800" in a string', set_field(lines, text, "\ud800"), name
        ),
        jsonl_case(loader, "nan_string", "NaN where a string belongs", set_field(lines, text, float("nan")), name),
        jsonl_case(
            loader,
            "malformed_json",
            "line 2 cut in half",
            join([lines[0], lines[1][: len(lines[1]) // 2], *lines[2:]]),
            "<json>",
        ),
        jsonl_case(loader, "not_a_record", "line 2 is the number 42", join([lines[0], b"42", *lines[2:]]), "<record>"),
        jsonl_case(
            loader,
            "repeated_key",
            "a key repeated in one object (JSON keeps the last)",
            join([lines[0], repeat_first_key(lines[1]), *lines[2:]]),
            first_key(json.loads(lines[1])),
        ),
        jsonl_case(loader, "empty_file", "an empty file", b"", "<file>", None),
        jsonl_case(loader, "blank_lines_only", "only blank lines", b"\n  \n\n", "<file>", None),
        jsonl_case(
            loader,
            "every_line_invalid",
            "every line malformed: nothing left after skipping",
            join([l[:-1] for l in lines]),
            "<json>",
            1,
            skipped_lines=None,
            skip_error=("<file>", None),
        ),
    ]


# ----------------------------------------------------------------------------- per-format cases


def redial_cases() -> list[Case]:
    lines = base_lines("redial")
    second = json.loads(lines[1])
    mid = next(iter(second["movieMentions"]))
    asked = next(iter(second["respondentQuestions"]))
    msg_id = ("messages", 0, "messageId")

    def case(name, what, content, path, line=BAD, **kw):
        return jsonl_case("redial", name, what, content, path, line, **kw)

    def with_line(n, change):
        return join(edit_line(lines, n, change))

    def same_id(rec):
        rec["messages"][1]["messageId"] = rec["messages"][0]["messageId"]

    return [
        case("message_id_nan", "messageId NaN", set_field(lines, msg_id, float("nan")), msg_id),
        case("message_id_1e400", "messageId 1e400 (infinite as a float)", set_raw(lines, msg_id, b"1e400"), msg_id),
        case("message_id_string", 'messageId "abc"', set_field(lines, msg_id, "abc"), msg_id),
        case("message_id_null", "messageId null", set_field(lines, msg_id, None), msg_id),
        case("message_id_float", "messageId 1.7 (would become 1)", set_field(lines, msg_id, 1.7), msg_id),
        case("message_id_true", "messageId true", set_field(lines, msg_id, True), msg_id),
        case("message_id_2_pow_63", "messageId 2**63 (over int64)", set_field(lines, msg_id, 2**63), msg_id),
        case("message_id_5000_digits", "messageId of 5000 digits", set_raw(lines, msg_id, b"9" * 5000), "<json>"),
        case(
            "message_id_repeated", "two messages with one messageId", with_line(BAD, same_id), "messages[1].messageId"
        ),
        case(
            "message_not_object",
            'a message that is the string "hello"',
            set_field(lines, ("messages", 1), "hello"),
            ("messages", 1),
        ),
        case("messages_object", "messages an object", set_field(lines, ("messages",), {"a": 1}), "messages"),
        case("messages_empty", "messages []", set_field(lines, ("messages",), []), "messages"),
        case("messages_missing", "no messages field", with_line(BAD, lambda r: r.pop("messages")), "messages"),
        case(
            "text_null",
            'text null (was stored as "None")',
            set_field(lines, ("messages", 0, "text"), None),
            "messages[0].text",
        ),
        case(
            "text_number",
            'text 12345 (was stored as "12345")',
            set_field(lines, ("messages", 0, "text"), 12345),
            "messages[0].text",
        ),
        case(
            "text_object",
            'text {"a": [1]} (was stringified)',
            set_field(lines, ("messages", 0, "text"), {"a": [1]}),
            "messages[0].text",
        ),
        case(
            "text_unknown_movie",
            "text mentions @123456789, in no catalogue",
            with_line(BAD, lambda r: put(r, ("messages", 0, "text"), r["messages"][0]["text"] + " @123456789")),
            "messages[0].text",
        ),
        case(
            "sender_string",
            'senderWorkerId "7"',
            set_field(lines, ("messages", 0, "senderWorkerId"), "7"),
            "messages[0].senderWorkerId",
        ),
        case(
            "sender_not_a_worker",
            "a sender that is neither worker (was counted as recommender)",
            set_field(lines, ("messages", 0, "senderWorkerId"), 999999),
            "messages[0].senderWorkerId",
        ),
        case(
            "conversation_id_object",
            "conversationId an object (was stringified)",
            set_field(lines, ("conversationId",), {"a": 1}),
            "conversationId",
        ),
        case(
            "conversation_id_number",
            "conversationId a number",
            set_field(lines, ("conversationId",), 20002),
            "conversationId",
        ),
        case("conversation_id_empty", 'conversationId ""', set_field(lines, ("conversationId",), ""), "conversationId"),
        case(
            "conversation_id_repeated",
            "line 3 repeats line 1's conversationId (was counted twice)",
            set_field(lines, ("conversationId",), json.loads(lines[0])["conversationId"], n=3),
            "conversationId",
            3,
        ),
        case(
            "initiator_null",
            "initiatorWorkerId null",
            set_field(lines, ("initiatorWorkerId",), None),
            "initiatorWorkerId",
        ),
        case(
            "mentions_list",
            "movieMentions a non-empty list",
            set_field(lines, ("movieMentions",), ["x"]),
            "movieMentions",
        ),
        case("mentions_string", "movieMentions a string", set_field(lines, ("movieMentions",), "x"), "movieMentions"),
        case(
            "mentions_key_not_digits",
            'a movieMentions key "abc"',
            set_field(lines, ("movieMentions", "abc"), "Up (2009)"),
            "movieMentions.abc",
        ),
        case(
            "mentions_name_number",
            "a movie name 5",
            set_field(lines, ("movieMentions", mid), 5),
            f"movieMentions.{mid}",
        ),
        case(
            "liked_out_of_range",
            "liked 5",
            set_field(lines, ("respondentQuestions", asked, "liked"), 5),
            f"respondentQuestions.{asked}.liked",
        ),
        case(
            "liked_true",
            "liked true (was 1)",
            set_field(lines, ("respondentQuestions", asked, "liked"), True),
            f"respondentQuestions.{asked}.liked",
        ),
        case(
            "liked_missing",
            "an answer without liked (was dropped)",
            with_line(BAD, lambda r: r["respondentQuestions"][asked].pop("liked")),
            f"respondentQuestions.{asked}.liked",
        ),
        case(
            "questions_string",
            "initiatorQuestions a string",
            set_field(lines, ("initiatorQuestions",), "x"),
            "initiatorQuestions",
        ),
        case(
            "questions_list",
            "initiatorQuestions a non-empty list",
            set_field(lines, ("initiatorQuestions",), [1]),
            "initiatorQuestions",
        ),
    ]


def inspired_cases() -> list[Case]:
    lines = base_lines("inspired")
    dialog = json.loads(lines[1])
    linked = next(j for j, t in enumerate(dialog) if t["movie_link"])
    entity = next(j for j, t in enumerate(dialog) if t["entity_link"])

    def case(name, what, content, path):
        return jsonl_case("inspired", name, what, content, path)

    return [
        case("text_null", "a turn's text null (was a null row)", set_field(lines, (0, "text"), None), "[0].text"),
        case("text_number", "a turn's text 12345", set_field(lines, (0, "text"), 12345), "[0].text"),
        case("role_unknown", 'role "BOT"', set_field(lines, (0, "role"), "BOT"), "[0].role"),
        case(
            "role_missing", "a turn without role", join(edit_line(lines, BAD, lambda d: d[0].pop("role"))), "[0].role"
        ),
        case("turn_not_object", 'a turn that is the string "hi"', set_field(lines, (1,), "hi"), "[1]"),
        case(
            "dialog_object", "a dialogue that is an object", join([lines[0], b'{"text": "hi"}', lines[2]]), "<record>"
        ),
        case("dialog_empty", "a dialogue []", join([lines[0], b"[]", lines[2]]), "<record>"),
        case(
            "movie_link_string",
            "movie_link a string",
            set_field(lines, (linked, "movie_link"), "x"),
            f"[{linked}].movie_link",
        ),
        case(
            "movie_name_null",
            "movie_name null",
            set_field(lines, (linked, "movie_name"), None),
            f"[{linked}].movie_name",
        ),
        case(
            "entity_link_number",
            "an entity link 5",
            set_field(lines, (entity, "entity_link", 0), 5),
            f"[{entity}].entity_link[0]",
        ),
    ]


def reviews_cases() -> list[Case]:
    lines = base_lines("reviews")

    def case(name, what, content, path):
        return jsonl_case("reviews", name, what, content, path)

    def drop(key):
        return join(edit_line(lines, BAD, lambda r: r.pop(key)))

    return [
        case("resp_null", "resp null", set_field(lines, ("resp",), None), "resp"),
        case("resp_number", "resp 12345", set_field(lines, ("resp",), 12345), "resp"),
        case("resp_missing", "no resp", drop("resp"), "resp"),
        case("rec_string", 'rec "Up" (was its first letter)', set_field(lines, ("rec",), "Up"), "rec"),
        case("rec_empty", "rec []", set_field(lines, ("rec",), []), "rec"),
        case("rec_item_null", 'rec [null] (was the movie "None")', set_field(lines, ("rec", 0), None), "rec[0]"),
        case(
            "context_string",
            "context a string (was its last character)",
            set_field(lines, ("context",), "User: hi"),
            "context",
        ),
        case("context_item_number", "context [5]", set_field(lines, ("context", 0), 5), "context[0]"),
        case("helpfulness_string", 'helpfulness "3" (was 3.0)', set_field(lines, ("helpfulness",), "3"), "helpfulness"),
        case("helpfulness_nan", "helpfulness NaN", set_field(lines, ("helpfulness",), float("nan")), "helpfulness"),
        case("helpfulness_true", "helpfulness true", set_field(lines, ("helpfulness",), True), "helpfulness"),
        case(
            "helpful_votes_1e400", "helpful_votes 1e400", set_raw(lines, ("helpful_votes",), b"1e400"), "helpful_votes"
        ),
        case("votes_huge_int", "votes 10**400 (too large for a float)", set_field(lines, ("votes",), 10**400), "votes"),
    ]


def labels_cases() -> list[Case]:
    lines = base_lines("labels")

    def case(name, what, content, path, line=BAD):
        return jsonl_case("labels", name, what, content, path, line)

    def copy_turn(rec):
        first = json.loads(lines[0])
        rec["conversation_id"], rec["message_ids"] = first["conversation_id"], first["message_ids"]

    return [
        case(
            "conversation_id_number",
            "conversation_id a number",
            set_field(lines, ("conversation_id",), 20001),
            "conversation_id",
        ),
        case("message_ids_string", 'message_ids "1"', set_field(lines, ("message_ids",), "1"), "message_ids"),
        case("message_ids_empty", "message_ids []", set_field(lines, ("message_ids",), []), "message_ids"),
        case("message_id_float", "a message id 1.7", set_field(lines, ("message_ids", 0), 1.7), "message_ids[0]"),
        case(
            "message_id_nan", "a message id NaN", set_field(lines, ("message_ids", 0), float("nan")), "message_ids[0]"
        ),
        case("labels_unknown", 'labels ["joyous"]', set_field(lines, ("labels",), ["joyous"]), "labels"),
        case("labels_empty", "labels []", set_field(lines, ("labels",), []), "labels"),
        case("labels_three", "three labels", set_field(lines, ("labels",), ["like", "happy", "curious"]), "labels"),
        case("labels_string", 'labels "like"', set_field(lines, ("labels",), "like"), "labels"),
        case("labels_missing", "no labels", join(edit_line(lines, BAD, lambda r: r.pop("labels"))), "labels"),
        case("raw_string", 'raw "love"', set_field(lines, ("raw",), "love"), "raw"),
        case("raw_item_null", "raw [null]", set_field(lines, ("raw", 0), None), "raw[0]"),
        case(
            "turn_labelled_twice",
            "line 3 labels line 1's turn again (was counted twice)",
            join(edit_line(lines, 3, copy_turn)),
            "message_ids",
            3,
        ),
    ]


# ----------------------------------------------------------------------------- side files (always an error)


def kg_base() -> dict[str, bytes]:
    """The clean KG the KG cases start from: the sample KG cut to its entities with ids below KG_BASE_ENTITIES (ids
    stay 0..N-1), the edges among them, its items and movies, as file name → bytes."""
    kg = SAMPLE / "redial" / "kg"

    def load(name):
        return json.loads((kg / name).read_bytes())

    n = KG_BASE_ENTITIES
    e2id = {u: i for u, i in load("entity2id.json").items() if i < n}
    subkg = {h: [e for e in edges if e[1] < n] for h, edges in load("dbpedia_subkg.json").items() if int(h) < n}
    items = [i for i in load("item_ids.json") if i < n]
    movies = {m: v for m, v in load("redial_movieid2entity.json").items() if v["entity_id"] < n}
    out = {"entity2id.json": e2id, "dbpedia_subkg.json": subkg, "item_ids.json": items, MOVIE_MAP: movies}
    files = {name: dump(obj) for name, obj in out.items()}
    for name in ("relation2id.json", "relation_set.json"):
        files[name] = (kg / name).read_bytes()
    return files


def kg_cases() -> list[Case]:
    base = kg_base()

    def load(name):
        return json.loads(base[name])

    def case(file, name, what, content, fname, line=None):
        return Case("kg", name, what, content, fname, line, f"redial/kg/{file}")

    def changed(file, change):
        obj = load(file)
        change(obj)
        return dump(obj)

    e2id = load("entity2id.json")
    uris = list(e2id)
    n = len(e2id)
    subkg = load("dbpedia_subkg.json")
    head = next(iter(subkg))
    items = load("item_ids.json")
    movie = next(iter(load("redial_movieid2entity.json")))
    raw_e2id = base["entity2id.json"]
    name = uris[0].rsplit("/", 1)[1].rstrip(">").encode()
    e2 = "entity2id.json"
    sk = "dbpedia_subkg.json"
    it = "item_ids.json"
    mm = "redial_movieid2entity.json"
    return [
        case(e2, "entity2id_empty_file", "entity2id.json empty", b"", "<file>"),
        case(e2, "entity2id_malformed", "entity2id.json cut in half", raw_e2id[: len(raw_e2id) // 2], "<json>", 1),
        case(
            e2,
            "entity2id_non_utf8",
            "a 0xff byte in entity2id.json",
            raw_e2id.replace(name, name + b"\xff", 1),
            "<encoding>",
            1,
        ),
        case(
            e2, "entity2id_deep_nesting", f"entity2id.json {DEPTH} nested arrays", b"[" * DEPTH + b"]" * DEPTH, "<json>"
        ),
        case(e2, "entity2id_list", "entity2id.json a list", dump(uris), "<top level>"),
        case(e2, "entity2id_empty_object", "entity2id.json {}", b"{}", "<top level>"),
        case(e2, "entity2id_id_string", 'an entity id "1"', changed(e2, lambda o: put(o, (uris[1],), "1")), uris[1]),
        case(e2, "entity2id_id_float", "an entity id 1.0", changed(e2, lambda o: put(o, (uris[1],), 1.0)), uris[1]),
        case(
            e2,
            "entity2id_id_out_of_range",
            f"an entity id {n} (ids index name and embedding rows)",
            changed(e2, lambda o: put(o, (uris[1],), n)),
            uris[1],
        ),
        case(
            e2,
            "entity2id_id_repeated",
            "two URIs with one id (one name was overwritten)",
            changed(e2, lambda o: put(o, (uris[2],), o[uris[1]])),
            uris[2],
        ),
        case(
            e2,
            "entity2id_key_repeated",
            "a URI twice (JSON keeps the last)",
            b'{"' + uris[0].encode() + b'": 7, ' + raw_e2id[1:],
            uris[0],
        ),
        case(
            e2,
            "entity2id_lone_surrogate",
            "a URI with a lone surrogate",
            changed(e2, lambda o: o.__setitem__("<http://dbpedia.org/resource/\ud800>", o.pop(uris[-1]))),
            "<http://dbpedia.org/resource/\ud800>",
        ),
        case(
            "relation2id.json",
            "relation2id_id_null",
            "a relation id null",
            changed("relation2id.json", lambda o: put(o, (next(iter(o)),), None)),
            next(iter(load("relation2id.json"))),
        ),
        case(sk, "subkg_head_not_digits", 'a head id "abc"', changed(sk, lambda o: put(o, ("abc",), [[1, 2]])), "abc"),
        case(sk, "subkg_edges_string", "a head's edges a string", changed(sk, lambda o: put(o, (head,), "x")), head),
        case(
            sk,
            "subkg_edge_not_pair",
            "an edge [24] (not a pair)",
            changed(sk, lambda o: put(o, (head, 0), [24])),
            f"{head}[0]",
        ),
        case(
            sk,
            "subkg_relation_float",
            "a relation id 1.5",
            changed(sk, lambda o: put(o, (head, 0, 0), 1.5)),
            f"{head}[0][0]",
        ),
        case(
            sk,
            "subkg_tail_out_of_range",
            f"a tail id {n}",
            changed(sk, lambda o: put(o, (head, 0, 1), n)),
            f"{head}[0]",
        ),
        case(
            sk,
            "subkg_relation_out_of_range",
            "a relation id 99",
            changed(sk, lambda o: put(o, (head, 0, 0), 99)),
            f"{head}[0]",
        ),
        case(sk, "subkg_empty_object", "dbpedia_subkg.json {}", b"{}", "<top level>"),
        case(it, "items_object", "item_ids.json an object", b"{}", "<top level>"),
        case(it, "items_empty", "item_ids.json []", b"[]", "<top level>"),
        case(it, "items_string", 'an item id "10"', changed(it, lambda o: put(o, (1,), str(items[1]))), "[1]"),
        case(it, "items_out_of_range", f"an item id {n}", changed(it, lambda o: put(o, (1,), n)), "[1]"),
        case(it, "items_repeated", "an item id listed twice", changed(it, lambda o: put(o, (1,), items[0])), "[1]"),
        case(
            mm,
            "movie_map_entity_string",
            'an entity_id "0"',
            changed(mm, lambda o: put(o, (movie, "entity_id"), "0")),
            f"{movie}.entity_id",
        ),
        case(
            mm,
            "movie_map_entity_out_of_range",
            f"an entity_id {n}",
            changed(mm, lambda o: put(o, (movie, "entity_id"), n)),
            f"{movie}.entity_id",
        ),
        case(
            mm,
            "movie_map_entity_missing",
            "an entry without entity_id",
            changed(mm, lambda o: o[movie].pop("entity_id")),
            f"{movie}.entity_id",
        ),
        case(
            mm,
            "movie_map_name_null",
            'a name null (was "None")',
            changed(mm, lambda o: put(o, (movie, "name"), None)),
            f"{movie}.name",
        ),
        case(
            mm,
            "movie_map_key_not_digits",
            'a movie id "tt0114709"',
            changed(mm, lambda o: o.__setitem__("tt0114709", o.pop(movie))),
            "tt0114709",
        ),
        case(mm, "movie_map_list", "redial_movieid2entity.json a list", b"[]", "<top level>"),
    ]


def movies_cases() -> list[Case]:
    lines = (SAMPLE / TARGETS["movies"]).read_bytes().split(b"\r\n")  # CRLF, as the real file; last item b""
    third = lines[2].split(b",")

    def case(name, what, content, fname, line=3):
        return Case("movies", name, what, content, fname, line, TARGETS["movies"])

    def with_line(n, new):
        return b"\r\n".join([*lines[: n - 1], new, *lines[n:]])

    return [
        case(
            "non_utf8_name",
            "a name saved as latin-1 (é)",
            with_line(3, lines[2].replace(b"(", "é (".encode("latin-1"), 1)),
            "<encoding>",
        ),
        case(
            "surrogate_bytes",
            "a lone surrogate written as UTF-8 bytes (ED A0 80)",
            with_line(3, lines[2].replace(b"(", b"\xed\xa0\x80 (", 1)),
            "<encoding>",
        ),
        case("missing_column", "a header without movieName", with_line(1, b"movieId,title,nbMentions"), "movieName", 1),
        case("short_row", "a row with two of three columns", with_line(3, b",".join(third[:2])), "<row>"),
        case("id_not_digits", 'a movieId "abc"', with_line(3, b",".join([b"abc", *third[1:]])), "movieId"),
        case("empty_name", "an empty movieName", with_line(3, b",".join([third[0], b"", third[2]])), "movieName"),
        case(
            "id_repeated",
            "line 4 repeats line 3's movieId (which name wins?)",
            with_line(4, b",".join([third[0], *lines[3].split(b",")[1:]])),
            "movieId",
            4,
        ),
        case(
            "unbalanced_quote",
            "a stray quote that would swallow the rows after it (up to the next quote: a quoted name, or the end)",
            with_line(3, b",".join([third[0], b'"' + third[1], third[2]])),
            "<csv>",
            next((n for n in range(4, len(lines)) if b'"' in lines[n - 1]), len(lines) - 1),
        ),
        case("empty_file", "an empty file", b"", "<file>", None),
        case("header_only", "only the header", lines[0] + b"\r\n", "<file>", None),
    ]


def all_cases() -> list[Case]:
    return [
        *(c for loader in JSONL for c in common_cases(loader)),
        *redial_cases(),
        *inspired_cases(),
        *reviews_cases(),
        *labels_cases(),
        *kg_cases(),
        *movies_cases(),
    ]


def generate() -> dict[str, bytes]:
    """Relative path under bad_inputs/ → content, `cases.json` included."""
    cases = all_cases()
    files = {c.file: c.content for c in cases}
    assert len(files) == len(cases), "case names must be unique per loader"
    files.update({f"{KG_BASE}/{name}": content for name, content in kg_base().items()})
    manifest = json.dumps([c.manifest() for c in cases], indent=1, ensure_ascii=True) + "\n"
    return {**files, "cases.json": manifest.encode()}


def main() -> None:
    files = generate()
    shutil.rmtree(CORPUS, ignore_errors=True)
    for rel, content in files.items():
        (CORPUS / rel).parent.mkdir(parents=True, exist_ok=True)
        (CORPUS / rel).write_bytes(content)
    print(
        f"wrote {sum('/' in rel and not rel.startswith(KG_BASE) for rel in files)} cases to "
        f"{CORPUS.relative_to(Path.cwd()) if CORPUS.is_relative_to(Path.cwd()) else CORPUS}"
    )


if __name__ == "__main__":
    main()
