"""Analytic functions (eKuiper docs sqls/functions/analytic_functions.md): per-rule state kept in
``EvalContext.state``, one slot per call site.

Each compiled call site allocates its own state key, so two ``lag(a)`` in one SELECT keep separate
histories. ``OVER (PARTITION BY k...)`` keeps one state per partition value; ``OVER (WHEN cond)`` updates
state only on events where cond is true (the result is still computed from the current state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from runtime.model import Row
from runtime.sql.ast import Call, Expr, FieldRef, Literal, NestedRef, Wildcard
from runtime.sql.functions.base import Check, FunctionDef
from runtime.sql.values import EvalContext, EvalError, Fn, go_str
from runtime.sql.wildcard import wildcard_emit

# step(state, args, update) -> result; ``state`` is this call site's (and partition's) dict.
Step = Callable[[dict[str, Any], list[Any], bool], Any]


def _analytic(step: Step) -> Callable[[Call, Callable[[Expr], Fn]], Fn]:
    def compile_hook(call: Call, compile_sub: Callable[[Expr], Fn]) -> Fn:
        args = tuple(compile_sub(arg) for arg in call.args)
        over = call.over
        partition = tuple(compile_sub(e) for e in over.partition_by) if over is not None else ()
        when = compile_sub(over.when) if over is not None and over.when is not None else None
        site = object()  # identity of this call site in ctx.state

        def analytic(row: Row, ctx: EvalContext) -> Any:
            slots: dict[Any, dict[str, Any]] = ctx.state.setdefault(site, {})
            key = tuple(go_str(p(row, ctx)) for p in partition) if partition else ()
            state = slots.get(key)
            if state is None:
                state = slots[key] = {}
            update = when is None or when(row, ctx) is True
            return step(state, [arg(row, ctx) for arg in args], update)

        return analytic

    return compile_hook


def _lag(state: dict[str, Any], a: list[Any], update: bool) -> Any:
    offset = a[1] if len(a) > 1 else 1
    default = a[2] if len(a) > 2 else None
    ignore_null = a[3] if len(a) > 3 else True
    history: list[Any] = state.setdefault("history", [])
    result = history[-offset] if len(history) >= offset else default
    if update and (a[0] is not None or ignore_null is not True):
        history.append(a[0])
        del history[: -max(offset, 1)]  # keep only what the offset can reach
    return result


def _latest(state: dict[str, Any], a: list[Any], update: bool) -> Any:
    if update and a[0] is not None:
        state["latest"] = a[0]
    return state.get("latest", a[1] if len(a) > 1 else None)


def _changed(state: dict[str, Any], index: int, value: Any, ignore_null: bool, update: bool) -> bool:
    if value is None and ignore_null:
        return False
    slot = f"v{index}"
    changed = slot not in state or state[slot] != value
    if changed and update:
        state[slot] = value
    return changed


def _changed_col(state: dict[str, Any], a: list[Any], update: bool) -> Any:
    ignore_null = a[0] is True
    return a[1] if _changed(state, 0, a[1], ignore_null, update) else None


def _had_changed(state: dict[str, Any], a: list[Any], update: bool) -> bool:
    ignore_null = a[0] is True
    results = [_changed(state, i, v, ignore_null, update) for i, v in enumerate(a[1:])]
    return any(results)


def _compile_changed_cols(call: Call, compile_sub: Callable[[Expr], Fn]) -> Fn:
    """``changed_cols(prefix, ignoreNull, e1 or *, ...)``: the changed columns as ``{prefix + name: value}``.

    It is a multi-column function evaluated by the projection (rows WHERE rejects are not seen); the
    projection spreads the result into the output row. Each column keeps its last value in this call site's
    state; a column whose value equals it (a never-seen column counts as null) is left out.
    """
    prefix_fn, ignore_fn = compile_sub(call.args[0]), compile_sub(call.args[1])
    columns: list[tuple[str | None, Fn]] = [
        (None, _wildcard_columns(arg, compile_sub))
        if isinstance(arg, Wildcard)
        else (_column_name(arg), compile_sub(arg))
        for arg in call.args[2:]
    ]
    site = object()

    def changed_cols(row: Row, ctx: EvalContext) -> Any:
        prefix, ignore_null = prefix_fn(row, ctx), ignore_fn(row, ctx)
        if not isinstance(prefix, str):
            raise EvalError(f"first arg is not a string but got {go_str(prefix)}")
        if not isinstance(ignore_null, bool):
            raise EvalError(f"second arg is not a bool but got {go_str(ignore_null)}")
        last: dict[str, Any] = ctx.state.setdefault(site, {})
        out: dict[str, Any] = {}
        for name, fn in columns:
            value = fn(row, ctx)
            pairs = value.items() if name is None and isinstance(value, dict) else ((name, value),)
            for key, v in pairs:
                if (v is None and ignore_null) or key is None:
                    continue
                if (v is None and key not in last) or (key in last and _same(last[key], v)):
                    continue  # unchanged (a column never seen counts as null)
                last[key] = v
                out[prefix + key] = v
        return out or None

    return changed_cols


def _wildcard_columns(wildcard: Wildcard, compile_sub: Callable[[Expr], Fn]) -> Fn:
    """``*`` (or ``demo.*``) as a ``changed_cols`` argument: the columns the projection's wildcard would give,
    nulls included."""
    emit = wildcard_emit(
        wildcard, [(f.alias or "", compile_sub(f.expr)) for f in wildcard.replace], keep_nulls=True
    )

    def columns(row: Row, ctx: EvalContext) -> Row:
        out: Row = {}
        emit(row, ctx, out)
        return out

    return columns


def _column_name(arg: Expr) -> str:
    if isinstance(arg, FieldRef):
        return arg.name
    if isinstance(arg, NestedRef):
        return arg.key
    if isinstance(arg, Call):
        return arg.name
    return go_str(arg)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # Go interface equality: 1 and 1.0 differ


def _check_changed_cols(call: Call) -> str | None:
    if len(call.args) <= 2:
        return f"validate function changed_cols error: expect more than two args but got {len(call.args)}"
    prefix, ignore = call.args[0], call.args[1]
    if isinstance(prefix, Literal) and not isinstance(prefix.value, str):
        return "validate function changed_cols error: Expect string type for parameter 1"
    if isinstance(ignore, Literal) and not isinstance(ignore.value, bool):
        return "validate function changed_cols error: Expect bool type for parameter 2"
    return None


def _accumulator(kind: str) -> Step:
    def step(state: dict[str, Any], a: list[Any], update: bool) -> Any:
        # Optional args: a[1] starts accumulating (true once seen), a[2] resets before this event.
        if len(a) > 2 and a[2] is True:
            state.clear()
        if len(a) > 1 and a[1] is True:
            state["started"] = True
        active = len(a) < 2 or state.get("started", False)
        value = a[0]
        if update and active and value is not None:
            if kind != "count" and (type(value) not in (int, float)):
                raise EvalError(f"the value should be number for acc_{kind} but got {go_str(value)}")
            state["count"] = state.get("count", 0) + 1
            if kind in ("sum", "avg"):
                state["sum"] = state.get("sum", 0.0) + float(value)
            elif kind == "min":
                state["acc"] = min(state.get("acc", float(value)), float(value))
            elif kind == "max":
                state["acc"] = max(state.get("acc", float(value)), float(value))
        if kind == "count":
            return state.get("count", 0)
        if kind == "sum":
            return state.get("sum", 0.0)
        if kind == "avg":
            return state["sum"] / state["count"] if state.get("count") else 0.0
        return state.get("acc")

    return step


def _check_lag(call: Call) -> str | None:
    if not 1 <= len(call.args) <= 4:
        return f"validate function lag error: expect one two or three args but got {len(call.args)}"
    if len(call.args) > 1 and not (isinstance(call.args[1], Literal) and type(call.args[1].value) is int):
        return "validate function lag error: Expect int type for parameter 2"  # the offset must be literal
    return None


def _analytic_def(name: str, lo: int, hi: int | None, step: Step, check: Check | None = None) -> FunctionDef:
    return FunctionDef(name, kind="analytic", min_args=lo, max_args=hi, compile=_analytic(step), check=check)


def analytic_defs() -> Iterable[FunctionDef]:
    yield _analytic_def("lag", 0, None, _lag, _check_lag)
    yield _analytic_def("latest", 1, 2, _latest)
    yield _analytic_def("changed_col", 2, 2, _changed_col)
    yield _analytic_def("had_changed", 2, None, _had_changed)
    for kind in ("sum", "min", "max", "count", "avg"):
        yield _analytic_def(f"acc_{kind}", 1, 3, _accumulator(kind))
    yield FunctionDef("changed_cols", kind="multi", compile=_compile_changed_cols, check=_check_changed_cols)
