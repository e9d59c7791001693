"""Runtime value semantics of Oort SQL (SURFACE.md §G): operators, Go-style type names, the eval context.

eKuiper is written in Go and users see its error texts (``invalid operation string(a) + int64(3)``), so
values are rendered with Go's type names and ``%v`` formatting here, in one place.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from runtime.clock import Clock
from runtime.errors import EngineError
from runtime.io.contract import Row


class EvalError(EngineError):
    """A runtime error while evaluating an expression for one row (the row becomes an error row)."""

    code = 2201  # eKuiper "executor" error


class EvalContext:
    """Per-rule mutable state that compiled expressions read: the current event's metadata and time.

    The rule's operator task owns one instance and updates ``meta``/``ts`` before each row, which avoids an
    allocation per event. Window operators fill ``window_start``/``window_end``/``group`` later.
    """

    __slots__ = (
        "analytic",
        "clock",
        "group",
        "meta",
        "rule_id",
        "state",
        "ts",
        "window_end",
        "window_start",
    )

    def __init__(
        self,
        *,
        rule_id: str = "",
        meta: Row | None = None,
        ts: int = 0,
        clock: Clock | None = None,
        window_start: int | None = None,
        window_end: int | None = None,
    ) -> None:
        self.rule_id = rule_id
        self.meta = meta
        self.ts = ts
        self.clock = clock
        self.window_start = window_start
        self.window_end = window_end
        self.group: list[Row] | None = None
        self.state: dict[object, Any] = {}  # per-rule state of stateful functions, keyed by call site
        self.analytic: list[Any] = []  # this event's analytic results, computed before WHERE

    def now_ms(self) -> int:
        """Current time for ``tstamp()``: the rule clock, or the event time when none was given."""
        return self.clock.now_ms() if self.clock is not None else self.ts

    def __repr__(self) -> str:
        return f"EvalContext(rule_id={self.rule_id!r}, ts={self.ts}, meta={self.meta!r})"


Fn = Callable[[Row, EvalContext], Any]
"""A compiled expression: evaluates against one row."""

# ------------------------------------------------------------------------------------------------ Go rendering


def go_type(value: Any) -> str:
    """The Go type eKuiper would report for ``value``."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes | bytearray):
        return "[]uint8"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, datetime.datetime):
        return "time.Time"
    return type(value).__name__


def go_str(value: Any) -> str:
    """``fmt.Sprintf("%v", value)`` for the value kinds rows carry."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value).replace("inf", "Inf").replace("nan", "NaN")
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, bytes | bytearray):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)


def typed(value: Any) -> str:
    """``int64(3)``, ``string(a)``: how eKuiper shows an operand in an error."""
    return f"{go_type(value)}({go_str(value)})"


def invalid_operation(left: Any, op: str, right: Any) -> EvalError:
    return EvalError(f"invalid operation {typed(left)} {op} {typed(right)}")


# ------------------------------------------------------------------------------------------------ operators


def _is_int(v: Any) -> bool:
    return type(v) is int  # bool is an int subclass and must not count


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def _int_div(a: int, b: int) -> int:
    q = a // b
    if q < 0 and q * b != a:
        q += 1  # Go truncates toward zero, Python floors
    return q


def _int_mod(a: int, b: int) -> int:
    return a - b * _int_div(a, b)


def _arith(
    op: str, int_op: Callable[[int, int], Any], float_op: Callable[[float, float], float]
) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        if _is_num(a) and _is_num(b):
            if op in ("/", "%") and b == 0:
                raise EvalError("divided by zero")
            if _is_int(a) and _is_int(b):
                return int_op(a, b)
            return float_op(float(a), float(b))
        raise invalid_operation(a, op, b)

    return apply


def _bitwise(op: str, int_op: Callable[[int, int], int]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        if _is_int(a) and _is_int(b):
            return int_op(a, b)
        if isinstance(a, bool) and isinstance(b, bool):
            return bool(int_op(a, b))  # on booleans & | ^ act as and / or / xor
        raise invalid_operation(a, op, b)

    return apply


# Read-only tables (no module-level mutable state): operator symbol -> implementation.
ARITHMETIC: Mapping[str, Callable[[Any, Any], Any]] = MappingProxyType(
    {
        "+": _arith("+", lambda a, b: a + b, lambda a, b: a + b),
        "-": _arith("-", lambda a, b: a - b, lambda a, b: a - b),
        "*": _arith("*", lambda a, b: a * b, lambda a, b: a * b),
        "/": _arith("/", _int_div, lambda a, b: a / b),
        "%": _arith("%", _int_mod, math.fmod),
        "&": _bitwise("&", lambda a, b: a & b),
        "|": _bitwise("|", lambda a, b: a | b),
        "^": _bitwise("^", lambda a, b: a ^ b),
    }
)

_ORDERINGS: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {
        "=": lambda a, b: bool(a == b),
        "!=": lambda a, b: bool(a != b),
        "<": lambda a, b: bool(a < b),
        "<=": lambda a, b: bool(a <= b),
        ">": lambda a, b: bool(a > b),
        ">=": lambda a, b: bool(a >= b),
    }
)


def _comparison(op: str) -> Callable[[Any, Any], bool]:
    test = _ORDERINGS[op]
    equality = op in ("=", "!=")

    def apply(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False  # any comparison with null is false, so WHERE drops rows lacking the field
        if _is_num(a) and _is_num(b):
            return test(a, b)
        ta = type(a)
        if ta is type(b) and (ta is str or ta is datetime.datetime):
            return test(a, b)
        if ta is bool and type(b) is bool and equality:
            return test(a, b)
        raise invalid_operation(a, op, b)

    return apply


COMPARISON: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {op: _comparison(op) for op in _ORDERINGS}
)

BINARY: Mapping[str, Callable[[Any, Any], Any]] = MappingProxyType({**ARITHMETIC, **COMPARISON})
"""Every non-logical binary operator; AND/OR short-circuit and are compiled separately."""


def loose_equal(a: Any, b: Any) -> bool:
    """Equality for IN lists: numbers numerically, other values only with the same type; never raises."""
    if a is None or b is None:
        return False
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)
