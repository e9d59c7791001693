"""Meta, rule and miscellaneous functions (eKuiper docs sqls/functions/other_functions.md), plus the names
whose evaluation other
operators own (aggregates, windows, set-returning and window functions): registered here for the
parse-time checks only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from runtime.model import Row
from runtime.sql.ast import Call, Expr, FieldRef, Literal, NestedRef, TimeUnit, Wildcard
from runtime.sql.functions.base import Check, FunctionDef, scalar
from runtime.sql.values import EvalContext, EvalError, Fn
from runtime.sql.windows import WINDOW_KINDS, WindowKind


def _meta_path(arg: Expr) -> list[str]:
    path: list[str] = []
    node: Expr = arg
    while isinstance(node, NestedRef):
        path.append(node.key)
        node = node.base
    if not isinstance(node, FieldRef):
        raise EvalError("the argument of meta must be a metadata key")
    path.append(node.name)
    path.reverse()
    return path


def _compile_meta(call: Call, compile_sub: Callable[[Expr], Fn]) -> Fn:
    # The argument names a metadata key; it is never evaluated against the row.
    if isinstance(call.args[0], Wildcard):
        return lambda row, ctx: ctx.meta
    path = _meta_path(call.args[0])

    def meta(row: Row, ctx: EvalContext) -> Any:
        value: Any = ctx.meta
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return meta


def _check_meta(call: Call) -> str | None:
    arg = call.args[0] if call.args else None
    while isinstance(arg, NestedRef):
        arg = arg.base
    if not isinstance(arg, FieldRef | Wildcard):
        return f"validate function {call.name} error: Expect meta reference type for parameter 1"
    return None


def _check_mqtt(call: Call) -> str | None:
    arg = call.args[0] if call.args else None
    if not (isinstance(arg, FieldRef) and arg.name in ("topic", "messageid")):
        return "validate function mqtt error: Expect meta reference type for parameter 1"
    return None


def _window_check(kind: WindowKind) -> Check:
    name = kind.function

    def check(call: Call) -> str | None:
        n = len(call.args)
        if n not in kind.arities:
            expect = " or ".join(str(a) for a in kind.arities)
            return f"The arguments for {name} should be {expect}."
        if kind.timed and not isinstance(call.args[0], TimeUnit):
            return (
                f"The 1st argument for {name} is expecting timer literal expression. "
                "One value of [dd|hh|mi|ss|ms]."
            )
        rest = call.args[1:] if kind.timed else call.args
        values: list[int] = []
        for arg in rest:
            if not (isinstance(arg, Literal) and type(arg.value) is int):
                return f"The arguments for {name} should be integer literals."
            values.append(arg.value)
        return kind.check(values) if kind.check is not None else None

    return check


def other_defs() -> Iterable[FunctionDef]:
    yield FunctionDef("meta", min_args=1, max_args=1, compile=_compile_meta, check=_check_meta)
    yield FunctionDef("mqtt", min_args=1, max_args=1, compile=_compile_meta, check=_check_mqtt)
    yield scalar("isnull", 1, 1, lambda a, ctx: a[0] is None, nulls=False)
    yield scalar("coalesce", 1, None, lambda a, ctx: next((v for v in a if v is not None), None), nulls=False)
    yield scalar("newuuid", 0, 0, lambda a, ctx: str(uuid.uuid4()))
    yield scalar("rule_id", 0, 0, lambda a, ctx: ctx.rule_id)
    yield scalar("event_time", 0, 0, lambda a, ctx: ctx.ts)
    yield scalar("window_start", 0, 0, lambda a, ctx: ctx.window_start)
    yield scalar("window_end", 0, 0, lambda a, ctx: ctx.window_end)
    yield scalar("bypass", 1, 1, lambda a, ctx: a[0], nulls=False)


def operator_owned_defs() -> Iterable[FunctionDef]:
    # Recognised now (arity and placement are checked at parse time); evaluated by the operators owning them.
    for name in ("count", "sum", "avg", "max", "min", "collect", "merge_agg", "median"):
        yield FunctionDef(name, kind="aggregate", min_args=1, max_args=1)
    for name in ("stddev", "stddevs", "var", "vars"):
        yield FunctionDef(name, kind="aggregate", min_args=1, max_args=1)
    for name in ("deduplicate", "last_value", "percentile_cont", "percentile_disc"):
        yield FunctionDef(name, kind="aggregate", min_args=2, max_args=2)
    # Outside a window a row is alone in its emission: row_number() is 1 (window queries rewrite the call).
    yield FunctionDef(
        "row_number", kind="window_func", min_args=0, max_args=0, compile=lambda c, sub: lambda r, x: 1
    )
    # unnest() yields its argument; the projection then expands the array (``ops.project.unnest_rows``).
    yield FunctionDef("unnest", kind="srf", min_args=1, max_args=1, compile=lambda c, sub: sub(c.args[0]))
    for kind in WINDOW_KINDS:
        if kind.conditions:  # conditions are expressions of any type: only their count is checked here
            yield FunctionDef(
                kind.function, kind="window", min_args=min(kind.arities), max_args=max(kind.arities)
            )
        else:
            yield FunctionDef(kind.function, kind="window", check=_window_check(kind))
