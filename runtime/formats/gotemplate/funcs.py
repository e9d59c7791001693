"""What a template function is (its Go parameter types and its Python body) and the conversions sprig's
functions share (spf13/cast's ``ToInt64``/``ToFloat64``, sprig's ``strval``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, final

from runtime.formats.gotemplate.values import MISSING, GoInt, sprint

PARAM_TYPES: Final = MappingProxyType(
    {
        "any": "interface {}",
        "value": "reflect.Value",
        "string": "string",
        "int": "int",
        "float": "float64",
        "bool": "bool",
        "list": "[]interface {}",
        "map": "map[string]interface {}",
    }
)
"""Parameter kinds and the Go type each stands for. ``value`` gets missing values as ``MISSING``, ``any`` as
None, like Go's ``reflect.Value`` and ``interface{}`` parameters."""


class FuncError(Exception):
    """A function call failed; the template error reads ``error calling NAME: <message>``."""


@final
class Func:
    """A template function: Go parameter kinds (the last one repeats when ``variadic``) and its body."""

    __slots__ = ("body", "params", "variadic")

    def __init__(self, params: str, body: Callable[..., Any], *, variadic: bool = False) -> None:
        self.params = tuple(params.split())
        self.body = body
        self.variadic = variadic
        for kind in self.params:
            assert kind in PARAM_TYPES, kind


FuncMap = Mapping[str, Func]


def table(*groups: Iterable[tuple[str, Func]]) -> FuncMap:
    """A read-only function table from (name, Func) pairs; later groups override earlier ones."""
    merged: dict[str, Func] = {}
    for group in groups:
        merged.update(group)
    return MappingProxyType(merged)


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def wrap64(value: int) -> int:
    """Go int64 arithmetic wraps around."""
    return (value - _INT64_MIN) % 2**64 + _INT64_MIN


def float_to_int64(value: float) -> int:
    # Go's int64(f) on amd64: NaN, infinities and out-of-range values all give the "integer indefinite" value.
    if math.isnan(value) or math.isinf(value) or not _INT64_MIN <= value < 2**63:
        return _INT64_MIN
    return int(value)


def _trim_zero_decimal(text: str) -> str:
    found_zero = False
    for i in range(len(text), 0, -1):
        ch = text[i - 1]
        if ch == ".":
            return text[: i - 1] if found_zero else text
        if ch != "0":
            return text
        found_zero = True
    return text


def parse_go_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, 64)``: None when it fails."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or body != body.strip():
        return None
    try:
        if len(body) > 1 and body[0] == "0" and body[1] in "01234567_":
            value = int(text.replace("_", ""), 8)
        else:
            value = int(text, 0)
    except ValueError:
        return None
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def parse_go_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(text, 64)``: None when it fails."""
    if text != text.strip() or ("_" in text and "0x" not in text.lower()):
        return None
    try:
        return float.fromhex(text) if "0x" in text.lower() else float(text)
    except ValueError:
        return None


def to_int64(value: Any) -> int:
    """spf13/cast ``ToInt64`` as sprig uses it: numbers truncate, strings parse (``"3.0"`` too), else 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return wrap64(value)
    if isinstance(value, float):
        return float_to_int64(value)
    if isinstance(value, str):
        return parse_go_int(_trim_zero_decimal(value)) or 0
    return 0


def to_float64(value: Any) -> float:
    """spf13/cast ``ToFloat64``: numbers convert, strings parse, bools are 1/0, everything else 0."""
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        parsed = parse_go_float(value)
        return 0.0 if parsed is None else parsed
    return 0.0


def to_int(value: Any) -> GoInt:
    return GoInt(to_int64(value))


def strval(value: Any) -> str:
    """sprig's ``strval``: a string as is, bytes as text, anything else as ``%v`` (nil as ``<nil>``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return sprint(None if value is MISSING else value)


def is_empty(value: Any) -> bool:
    """sprig's ``empty``: nil, false, 0, "" and empty collections."""
    if value is None or value is MISSING:
        return True
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str | bytes | bytearray | list | tuple | dict):
        return len(value) == 0
    return False


def is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def kind_of(value: Any) -> str:
    """Go's reflect kind name used in sprig's list errors (``Cannot find first on type string``)."""
    if value is None or value is MISSING:
        return "invalid"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list | tuple | bytes | bytearray):
        return "slice"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if isinstance(value, GoInt) else "int64"
    if isinstance(value, float):
        return "float64"
    return "string" if isinstance(value, str) else "struct"


def deep_equal(a: Any, b: Any) -> bool:
    """Go's ``reflect.DeepEqual`` on template values, except that an int and a float of the same value are
    equal (Oort keeps JSON integers as integers where eKuiper has float64)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if is_list(a) and is_list(b):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if a is MISSING or b is MISSING:
        return (a is MISSING or a is None) and (b is MISSING or b is None)
    return type(a) is type(b) and bool(a == b)
