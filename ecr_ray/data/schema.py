"""Field specs for raw records.

Each raw format has one table, `record({field: spec, ...})`, saying what every field a loader reads must be. A
record is checked against it before anything converts it, so a wrong value becomes
`file:line: field 'messages[3].text': expected a string, got null` instead of a crash later, a stringified
`"None"` in the tables, or a failure at the Parquet write. A spec is a plain function `(value, field path)` that
raises `Invalid`; the combinators below build the tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from .errors import Invalid

Spec = Callable[[Any, str], None]
_DIGITS = re.compile(r"[0-9]{1,18}")
_INT64 = 2**63


def describe(value: Any) -> str:
    """A value as JSON names it, shortened: `null`, `true`, `number 1.7`, `string 'abc'`, `a list`, `an object`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"number {text if len(text) <= 24 else text[:21] + '...'}"
    if isinstance(value, str):
        text = repr(value)
        return f"string {text if len(text) <= 40 else text[:37] + '...'}"
    return "a list" if isinstance(value, list) else "an object"


def child(path: str, key: str | int) -> str:
    """`messages` + 3 → `messages[3]`; `messages[3]` + `text` → `messages[3].text`; "" + `text` → `text`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def string(value: Any, path: str) -> None:
    """A str that is valid Unicode: a lone surrogate (`"\\ud800"` in JSON) would only fail at the Parquet write."""
    if not isinstance(value, str):
        raise Invalid(path, f"expected a string, got {describe(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise Invalid(
                path, f"lone surrogate \\u{ord(value[e.start]):04x} at character {e.start} (not valid Unicode)"
            ) from None


def nonempty_string(value: Any, path: str) -> None:
    string(value, path)
    if not value.strip():
        raise Invalid(path, f"expected a non-empty string, got {describe(value)}")


def digits(value: Any, path: str) -> None:
    """An id written as a string of ASCII digits that fits int64 (ReDial movie ids, KG head ids)."""
    string(value, path)
    if not _DIGITS.fullmatch(value):
        raise Invalid(path, f"expected an id of 1-18 digits 0-9, got {describe(value)}")


def integer(value: Any, path: str) -> None:
    """An int that fits int64; never a bool, never a float (1.7 must not become 1, NaN or 1e400 must not crash)."""
    if type(value) is not int:
        raise Invalid(path, f"expected an integer, got {describe(value)}")
    if not -_INT64 <= value < _INT64:
        raise Invalid(path, f"expected a 64-bit integer, got {describe(value)}")


def number(value: Any, path: str) -> None:
    """A finite int or float (never a bool, NaN, Infinity or a number too large for a float)."""
    try:
        finite = type(value) in (int, float) and math.isfinite(value)
    except OverflowError:
        finite = False
    if not finite:
        raise Invalid(path, f"expected a finite number, got {describe(value)}")


def one_of(*allowed: Any) -> Spec:
    """Exactly one of the values, type included (`true` is not 1)."""

    def check(value: Any, path: str) -> None:
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise Invalid(path, f"expected one of {', '.join(map(repr, allowed))}, got {describe(value)}")

    return check


def nullable(spec: Spec) -> Spec:
    def check(value: Any, path: str) -> None:
        if value is not None:
            spec(value, path)

    return check


def list_of(item: Spec, min_len: int = 0, max_len: int | None = None) -> Spec:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise Invalid(path, f"expected a list, got {describe(value)}")
        if len(value) < min_len or (max_len is not None and len(value) > max_len):
            bounds = (
                f"at least {min_len}"
                if max_len is None
                else f"exactly {min_len}"
                if min_len == max_len
                else f"{min_len}-{max_len}"
            )
            raise Invalid(path, f"expected a list of {bounds} item(s), got {len(value)}")
        for i, x in enumerate(value):
            item(x, child(path, i))

    return check


def dict_of(key: Spec, value: Spec, min_len: int = 0) -> Spec:
    """An object whose keys all fit `key` and values all fit `value` (ids → entries)."""

    def check(obj: Any, path: str) -> None:
        if not isinstance(obj, dict):
            raise Invalid(path, f"expected an object, got {describe(obj)}")
        if len(obj) < min_len:
            raise Invalid(path, f"expected an object of at least {min_len} entry(s), got {len(obj)}")
        for k, v in obj.items():
            key(k, child(path, k))
            value(v, child(path, k))

    return check


def or_empty_list(spec: Spec) -> Spec:
    """ReDial's export writes an empty object as `[]` (e.g. `initiatorQuestions`)."""

    def check(value: Any, path: str) -> None:
        if not (isinstance(value, list) and not value):
            spec(value, path)

    return check


def record(required: dict[str, Spec], optional: dict[str, Spec] | None = None) -> Spec:
    """An object with these fields; fields no loader reads are not checked."""

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise Invalid(path, f"expected an object, got {describe(value)}")
        for name, spec in required.items():
            if name not in value:
                raise Invalid(child(path, name), "missing required field")
            spec(value[name], child(path, name))
        for name, spec in (optional or {}).items():
            if name in value:
                spec(value[name], child(path, name))

    return check
