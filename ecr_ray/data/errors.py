"""Input errors that name the file, line and field, and a collector for `--skip-invalid`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator


class DataError(ValueError):
    """A row of an input file is wrong. `str()` reads `file:line: field: message`."""

    def __init__(self, path: str | Path, line: int | None, field_name: str, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field_name, message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: field '{field_name}': {message}")

    def __reduce__(self):  # picklable, so the error crosses Ray task boundaries intact
        return (DataError, (self.path, self.line, self.field, self.message))


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


def read_jsonl(path: Path, invalid: InvalidRows, required: tuple[str, ...] = ()) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed record); malformed JSON or missing fields go through `invalid`."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                invalid.handle(DataError(path, lineno, "<json>", f"malformed JSON: {e.msg} at column {e.colno}"))
                continue
            missing = [k for k in required if not isinstance(rec, dict) or k not in rec]
            if missing:
                invalid.handle(DataError(path, lineno, missing[0], "missing required field"))
                continue
            yield lineno, rec
