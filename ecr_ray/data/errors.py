"""Input errors that name the file, line and field, a collector for `--skip-invalid`, and the readers that raise them.

Every raw file is read as bytes and decoded strictly as UTF-8 (a bad byte names its line, never becomes U+FFFD),
parsed with every way `json.loads` can fail turned into a `DataError`, and checked against a field spec
(`schema.py`) before any loader converts it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _printable(text: str) -> str:
    """Escape what would break a one-line terminal message: newlines, control characters, lone surrogates."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class DataError(ValueError):
    """A row of an input file is wrong. `str()` reads `file:line: field 'x': message` (`file: field ...` when the
    problem has no line)."""

    def __init__(self, path: str | Path, line: int | None, field_name: str, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field_name, message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(_printable(f"{where}: field '{field_name}': {message}"))

    def __reduce__(self):  # picklable, so the error crosses Ray task boundaries intact
        return (DataError, (self.path, self.line, self.field, self.message))


class Invalid(Exception):
    """A value breaks its field spec; `field` is its path inside the record (`messages[3].text`, "" for the record
    itself). The reader, which knows the file and line, turns it into a DataError."""

    def __init__(self, field_path: str, problem: str):
        super().__init__(field_path, problem)
        self.field, self.problem = field_path, problem


@dataclass
class InvalidRows:
    """Rows skipped under `skip_invalid`; reported, never silently dropped."""

    skip: bool = False
    errors: list[DataError] = field(default_factory=list)

    def handle(self, err: DataError) -> None:
        if not self.skip:
            raise err
        self.errors.append(err)

    def report(self) -> dict[str, Any]:
        return {"skipped": len(self.errors), "rows": [str(e) for e in self.errors]}


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """`object_pairs_hook`: JSON objects with a repeated key would silently keep only the last value."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


def decode(raw: bytes, path: Path, line: int | None) -> str:
    """Strict UTF-8. `line` is that of a JSONL record; for a whole file (None) the line of the bad byte is found."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if line is None:
            line = raw.count(b"\n", 0, e.start) + 1
            column = e.start - raw.rfind(b"\n", 0, e.start)
        else:
            column = e.start + 1
        raise DataError(
            path,
            line,
            "<encoding>",
            f"not valid UTF-8: byte 0x{raw[e.start]:02x} at column {column} (save the file as UTF-8)",
        ) from None


def parse_json(text: str, path: Path, line: int | None) -> Any:
    """`json.loads` with each way it fails as a DataError: malformed, nested deeper than the recursion limit, a
    repeated key, an integer of more than 4300 digits. `line`: the JSONL line; None for a whole file."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise DataError(
            path, line or e.lineno, "<json>", f"malformed JSON: {e.msg.removesuffix(' at')} at column {e.colno}"
        ) from None
    except RecursionError:
        raise DataError(path, line, "<json>", "nested too deeply to parse (over ~1000 levels)") from None
    except _RepeatedKey as e:
        raise DataError(path, line, e.key, "key repeated in one object (JSON would keep only the last value)") from None
    except ValueError as e:  # int() refusing a number of more than 4300 digits
        raise DataError(path, line, "<json>", f"malformed JSON: {str(e).split(':')[0]}") from None


def read_jsonl(
    path: Path, invalid: InvalidRows, spec: Callable[[Any, str], None], check: Callable[[Any, int], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, record) for each record that fits `spec` and passes `check` (rules across fields or
    records, e.g. repeated ids; given the line number). Both raise `Invalid`; a failing record goes through
    `invalid`, so under skip_invalid it costs only its own line. A file with no record left (empty, or every record
    skipped) is an error even under skip_invalid: it would otherwise become an empty split."""
    kept = skipped = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                rec = parse_json(decode(raw, path, lineno), path, lineno)
                try:
                    spec(rec, "")
                    if check is not None:
                        check(rec, lineno)
                except Invalid as e:
                    raise DataError(path, lineno, e.field or "<record>", e.problem) from None
            except DataError as e:
                invalid.handle(e)
                skipped += 1
                continue
            kept += 1
            yield lineno, rec
    if not kept:
        raise DataError(path, None, "<file>", f"no valid records: all {skipped} skipped" if skipped else "empty file")


def read_text(path: Path) -> str:
    """A whole side file as text: missing, empty or non-UTF-8 is an error (naming the line of the bad byte)."""
    if not path.exists():
        raise DataError(path, None, "<file>", "file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(path, None, "<file>", "empty file")
    return decode(raw, path, None)


def read_json(path: Path, spec: Callable[[Any, str], None]) -> Any:
    """A whole-file JSON side file (KG ids and edges, the movie map) checked against `spec`. Side files are lookups
    that every record depends on, so any problem is an error even under skip_invalid. Past the parse, errors name
    no line: the real side files are written on one line."""
    value = parse_json(read_text(path), path, None)
    try:
        spec(value, "")
    except Invalid as e:
        raise DataError(path, None, e.field or "<top level>", e.problem) from None
    return value
