"""The bad-input corpus (`bad_inputs/`, written by `make_bad_inputs.py`) against every raw-data loader.

Each case runs strict and with skip_invalid. Strict: a DataError naming the expected file, line and field, in the
`file:line: field '...': problem` shape, and nothing else escapes. With skip_invalid: the bad rows are listed and
the result is exactly that of the clean file with those lines blanked (every other row kept, values unchanged),
or, for whole-file problems, still the expected DataError.

`python -m tests.data.test_bad_inputs` rewrites the measured table in docs/data.md.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from ecr_ray.config import SAMPLE_DATA_DIR
from ecr_ray.data import inspired, redial
from ecr_ray.data.errors import DataError, InvalidRows
from ecr_ray.data.kg import MOVIE_MAP, load_kg, read_movie_map
from ecr_ray.data.labels_file import load_seeds
from ecr_ray.data.reviews_file import read_reviews
from tests.data import make_bad_inputs as corpus

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "data.md"
CASES = json.loads((corpus.CORPUS / "cases.json").read_text(encoding="utf-8"))
# Side-file loaders read a directory: the KG cases' small clean KG, the movies cases' copy of the sample's.
SIDE_DIRS = {"kg": (corpus.CORPUS / corpus.KG_BASE, "redial/kg"), "movies": (SAMPLE_DATA_DIR / "redial", "redial")}


@lru_cache(maxsize=1)
def sample_kg():
    return load_kg(SAMPLE_DATA_DIR / "redial" / "kg", read_movie_map(SAMPLE_DATA_DIR / "redial" / "kg" / MOVIE_MAP))


@lru_cache(maxsize=1)
def sample_movies():
    return redial.MovieCatalogue.load(SAMPLE_DATA_DIR / "redial")


@lru_cache(maxsize=1)
def inspired_entity2id():
    return load_kg(SAMPLE_DATA_DIR / "inspired").entity2id


def load_redial(data: Path, invalid: InvalidRows):
    return redial.load_split(data / corpus.TARGETS["redial"], "train", sample_movies(), None, invalid)


def load_inspired(data: Path, invalid: InvalidRows):
    return inspired.load_split(data / corpus.TARGETS["inspired"], "train", inspired_entity2id(), invalid)


def load_reviews(data: Path, invalid: InvalidRows):
    by_name = {" ".join(n.split()): i for i, n in sample_kg().item_names.items()}
    rows, dropped = read_reviews(data / corpus.TARGETS["reviews"], by_name, invalid=invalid)
    assert dropped.pop("invalid_row", 0) == len(invalid.errors)  # each skipped row counted, and listed
    return rows, dropped


def load_labels(data: Path, invalid: InvalidRows):
    return load_seeds(data / corpus.TARGETS["labels"], invalid)


def load_kg_dir(data: Path, invalid: InvalidRows):
    """As `tables.load_dataset_kg`: side files have no skip mode, `invalid` is unused."""
    kg_dir = data / "redial" / "kg"
    kg = load_kg(kg_dir, read_movie_map(kg_dir / MOVIE_MAP))
    return kg.entity2id, kg.relation2id, kg.triples.tolist(), kg.item_ids.tolist(), kg.item_names


def load_movies(data: Path, invalid: InvalidRows):
    return redial.MovieCatalogue.load(data / "redial")


LOADERS = {
    "redial": load_redial,
    "inspired": load_inspired,
    "reviews": load_reviews,
    "labels": load_labels,
    "kg": load_kg_dir,
    "movies": load_movies,
}


def place(case: dict, content: bytes, data: Path) -> Path:
    """A data directory where `content` stands in for the case's target file; returns the file's path."""
    if case["loader"] in SIDE_DIRS:
        clean, where = SIDE_DIRS[case["loader"]]
        shutil.copytree(clean, data / where)
    path = data / case["target"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def clean_without(loader: str, lines: list[int]) -> bytes:
    """The loader's clean base with `lines` blanked (numbers kept): what skip_invalid must read the bad file as."""
    base = corpus.base_lines(loader)
    return corpus.join([b"" if i + 1 in lines else l for i, l in enumerate(base)])


def run(case: dict, skip: bool, data: Path):
    """Run one case: (the DataError or None, the skipped errors, the loader's result, the file's path)."""
    path = place(case, (corpus.CORPUS / case["file"]).read_bytes(), data)
    invalid = InvalidRows(skip=skip)
    try:
        return None, invalid.errors, LOADERS[case["loader"]](data, invalid), path
    except DataError as e:
        return e, invalid.errors, None, path


def assert_names(err: DataError, path: Path, expected: dict) -> None:
    """The error names the file, line and field expected, in the one-line `file:line: field 'x': problem` shape."""
    assert (err.path, err.line, err.field) == (str(path), expected["line"], expected["field"]), str(err)
    where = f"{path}:{expected['line']}" if expected["line"] is not None else str(path)
    assert re.fullmatch(rf"{re.escape(where)}: field '[^\n]+': [^\n]+", str(err)), str(err)


@pytest.mark.parametrize("skip", [False, True], ids=["strict", "skip_invalid"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c['loader']}-{c['case']}" for c in CASES])
def test_bad_input(case, skip, tmp_path):
    err, skipped, result, path = run(case, skip, tmp_path / "bad")
    expect = case["skip_invalid"] if skip else {"error": case["strict"]}
    if "error" in expect:
        assert err is not None, f"no error for {case['file']}"
        assert_names(err, path, expect["error"])
        return
    assert err is None, str(err)
    assert result and result[0], "the rows around the bad one must still be read"
    assert [e.line for e in skipped] == expect["skipped_lines"]
    assert_names(skipped[0], path, case["strict"])  # the skipped row is reported as the strict error
    place(case, clean_without(case["loader"], expect["skipped_lines"]), tmp_path / "clean")
    assert result == LOADERS[case["loader"]](tmp_path / "clean", InvalidRows())


def test_corpus_matches_its_generator():
    """The committed corpus is exactly what make_bad_inputs.py writes (no stale, missing or edited file)."""
    on_disk = {str(p.relative_to(corpus.CORPUS)): p.read_bytes() for p in corpus.CORPUS.rglob("*") if p.is_file()}
    assert on_disk == corpus.generate()


def test_every_loader_has_cases():
    assert {c["loader"] for c in CASES} == set(LOADERS)


# ----------------------------------------------------------------------------- docs/data.md: the measured table

BEGIN, END = "<!-- bad-inputs:begin -->", "<!-- bad-inputs:end -->"


def measured_table(tmp: Path) -> str:
    """Run every case both ways; a markdown table of what each gets (paths relative to the data directory)."""
    rows = ["| loader | case | strict | with `--skip-invalid` |", "|---|---|---|---|"]
    for i, case in enumerate(CASES):
        outcomes = []
        for skip in (False, True):
            data = tmp / f"{i}-{skip}"
            err, skipped, _, _ = run(case, skip, data)
            if err is not None:
                text = str(err).replace(f"{data}/", "").replace("|", "\\|")
                outcomes.append("same error" if skip and text == outcomes[0].strip("`") else f"`{text}`")
            else:
                lines = ", ".join(str(e.line) for e in skipped)
                outcomes.append(f"skipped line {lines}, listed; other rows unchanged" if skipped else "no error")
        rows.append(f"| {case['loader']} | {case['what']} | {outcomes[0]} | {outcomes[1]} |")
    return "\n".join(rows)


def docs_section() -> str:
    text = DOCS.read_text(encoding="utf-8")
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()


def test_docs_table_is_measured(tmp_path):
    assert docs_section() == measured_table(tmp_path), (
        "docs/data.md is stale: run `python -m tests.data.test_bad_inputs`"
    )


# ----------------------------------------------------------------------------- through the real CLI


def test_cli_reports_one_line_and_exit_2(tmp_path):
    """`ecr-ray data` on a corrupted copy of the sample: strict → exit 2 with one `error: file:line: field` line;
    `--skip-invalid` with a test conversation that repeats a train one → exit 0, the row listed in the manifest."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE_DATA_DIR / "redial", data / "redial")
    train, test = data / "redial" / "train_data.jsonl", data / "redial" / "test_data.jsonl"
    lines = train.read_bytes().split(b"\n")
    train.write_bytes(corpus.set_field(lines[:-1], ("messages", 0, "text"), None, n=5))

    def cli(*extra):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "ecr_ray.jobs.data",
                "--recipe",
                "demo",
                "--data-dir",
                str(data),
                "--run-dir",
                str(tmp_path / "run"),
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )

    strict = cli()
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert strict.stderr.strip().splitlines() == [
        f"error: {train}:5: field 'messages[0].text': expected a string, got null"
    ]

    test_lines = test.read_bytes().count(b"\n")
    test.write_bytes(test.read_bytes() + lines[0] + b"\n")  # train's first conversation again, in test
    skipping = cli("--skip-invalid")
    assert skipping.returncode == 0 and "Traceback" not in skipping.stderr, skipping.stderr
    rows = json.loads((tmp_path / "run" / "tables" / "manifest.json").read_text())["invalid_rows"]["rows"]
    cid = json.loads(lines[0])["conversationId"]
    assert rows == [
        f"{train}:5: field 'messages[0].text': expected a string, got null",
        f"{test}:{test_lines + 1}: field 'conversationId': conversation {cid!r} already read at train_data.jsonl:1",
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table = measured_table(Path(tmp))
    text = DOCS.read_text(encoding="utf-8")
    DOCS.write_text(
        text[: text.index(BEGIN) + len(BEGIN)] + "\n" + table + "\n" + text[text.index(END) :], encoding="utf-8"
    )
    print(f"{DOCS}: {len(CASES)} cases measured")
