"""Runtime value semantics of Oort SQL (eKuiper docs sqls/data_types.md and the operators of
sqls/query_language_elements.md): operators, Go-style type names, the eval context.

eKuiper is written in Go and users see its error texts (``invalid operation string(a) + int64(3)``), so
values are rendered with Go's type names and ``%v`` formatting here, in one place.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from runtime.clock import Clock
from runtime.errors import EvalError as EvalError
from runtime.model import Row


class EvalContext:
    """Per-rule mutable state that compiled expressions read: the current event's metadata and time.

    The rule's operator task owns one instance and updates ``meta``/``ts`` before each row, which avoids an
    allocation per event. Window operators fill ``window_start``/``window_end``/``window_trigger``/``group``
    later. ``keyed_state`` and ``props`` are the engine's, shared by its rules.
    """

    __slots__ = (
        "analytic",
        "clock",
        "delay_ms",
        "group",
        "group_ts",
        "keyed_state",
        "meta",
        "props",
        "rule_id",
        "rule_start",
        "state",
        "ts",
        "window_end",
        "window_start",
        "window_trigger",
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
        keyed_state: KeyedState | None = None,
        props: Mapping[str, str] | None = None,
    ) -> None:
        self.rule_id = rule_id
        self.meta = meta
        self.ts = ts
        self.clock = clock
        # rule_start(): the operator (and so this context) is made when the rule's run starts.
        self.rule_start = clock.now_ms() if clock is not None else 0
        self.window_start = window_start
        self.window_end = window_end
        self.window_trigger: int | None = None  # when the window operator emitted the current pane
        self.keyed_state = keyed_state  # the engine's store read by get_keyed_state()
        self.props: Mapping[str, str] = props if props is not None else {}  # props(name) values
        self.delay_ms = 0  # delay() calls of the current emission: the operator sleeps this long, then resets
        self.group: list[Row] | None = None
        self.group_ts: list[int] | None = None  # event time of each row of ``group``, for aggregates
        self.state: dict[object, Any] = {}  # per-rule state of stateful functions, keyed by call site
        self.analytic: list[Any] = []  # this event's analytic results, computed before WHERE

    def now_ms(self) -> int:
        """Current time for ``tstamp()``: the rule clock, or the event time when none was given."""
        return self.clock.now_ms() if self.clock is not None else self.ts

    def __repr__(self) -> str:
        return f"EvalContext(rule_id={self.rule_id!r}, ts={self.ts}, meta={self.meta!r})"


class KeyedState(Protocol):
    """The engine's keyed state store as ``get_keyed_state()`` sees it (``runtime.store.keyed``)."""

    def get(self, key: str, now_ms: int | None = None) -> Any:
        """The value stored under ``key`` as of ``now_ms`` (the rule clock); raises KeyError when there is none."""
        ...


Fn = Callable[[Row, EvalContext], Any]
"""A compiled expression: evaluates against one row."""

# ------------------------------------------------------------------------------------------------ Go rendering


def go_type(value: Any) -> str:
    """The Go type eKuiper would report for ``value`` (``%T``: ``<nil>`` for null)."""
    if value is None:
        return "<nil>"
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
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
            return str(int(value)) if value or math.copysign(1.0, value) > 0 else "-0"
        return repr(value).replace("nan", "NaN")
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, bytes | bytearray):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)


def go_float_v(value: float) -> str:
    """Go's ``%v`` of a float64 (``%g``, shortest digits): exponent form when the exponent is < -4 or >= 6.

    ``go_str`` prints large integral floats in full instead, as eKuiper's string conversion does.
    """
    if not math.isfinite(value) or value == 0:
        return go_str(value)
    mantissa, _, exp = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    all_digits = whole + frac
    digits = all_digits.lstrip("0")
    point = len(whole) + int(exp or 0) - (len(all_digits) - len(digits))  # value = 0.<digits> * 10**point
    digits = digits.rstrip("0")
    sign = "-" if value < 0 else ""
    e10 = point - 1
    if e10 < -4 or e10 >= 6:
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'+' if e10 >= 0 else '-'}{abs(e10):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def typed(value: Any) -> str:
    """``int64(3)``, ``string(a)``: how eKuiper shows an operand in an error (Go's ``%T(%v)``)."""
    if isinstance(value, float):
        return f"float64({go_float_v(value)})"
    return f"{go_type(value)}({go_str(value)})"


def invalid_operation(left: Any, op: str, right: Any) -> EvalError:
    return EvalError(f"invalid operation {typed(left)} {op} {typed(right)}")


# ------------------------------------------------------------------------------------------------ operators


def _is_int(v: Any) -> bool:
    return type(v) is int  # bool is an int subclass and must not count


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _wrap64(n: int) -> int:
    """Go int64 overflow: wrap around (Python ints are unbounded, sinks encode at most 64 bits)."""
    if _INT64_MIN <= n <= _INT64_MAX:
        return n
    return (n - _INT64_MIN) % 2**64 + _INT64_MIN


def _int_div(a: int, b: int) -> int:
    q = a // b
    if q < 0 and q * b != a:
        q += 1  # Go truncates toward zero, Python floors
    return q


def _int_mod(a: int, b: int) -> int:
    return a - b * _int_div(a, b)


def _float_mod(a: float, b: float) -> float:
    """Go's ``math.Mod``: NaN for an infinite dividend (Python's ``fmod`` raises there)."""
    return math.nan if math.isinf(a) else math.fmod(a, b)


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
                return _wrap64(int_op(a, b))
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
        "%": _arith("%", _int_mod, _float_mod),
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
            if type(a) is not type(b):
                return test(float(a), float(b))  # Go converts the int to float64 (2**53 + 1 = 2.0**53)
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
        return bool(float(a) == float(b)) if type(a) is not type(b) else bool(a == b)
    return type(a) is type(b) and bool(a == b)
