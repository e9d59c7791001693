"""Functions over the rule's runtime rather than the row (eKuiper docs sqls/functions/other_functions.md):
``rule_start()``,
``window_trigger()``, ``props(name)``, ``get_keyed_state(key, type, default)``, ``delay(ms, v)``, plus the
set-returning ``extract(obj)`` and the checks of ``dedup_trigger(...)``, which is no per-row function: the
planner turns its SELECT field into the holding stage of ``runtime.ops.dedup``, anywhere else it is refused.

What they read lives in the ``EvalContext``: the run's start time, the window operator's trigger time, the
engine's properties and keyed state store. ``delay()`` cannot sleep inside a plain call: it adds its time to
``EvalContext.delay_ms`` and the operator task sleeps that long (on the rule clock) before it sends the
emission, which blocks the rule as eKuiper's sleeping function does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from runtime.errors import EngineError, PlanError
from runtime.model import Row
from runtime.sql.ast import Call, Expr, FieldRef, Literal, Select, TimeUnit, select_exprs, walk
from runtime.sql.functions.base import FunctionDef, scalar, with_check
from runtime.sql.functions.convert import cast_value
from runtime.sql.values import EvalContext, EvalError, Fn, go_str, typed

KEYED_STATE_TYPES = ("bigint", "float", "string", "boolean", "datetime")
SNOWFLAKE_EPOCH_MS = 1288834974657  # the Twitter epoch, as bwmarrin/snowflake (eKuiper's props(snowflake))
_SNOWFLAKE = "$$snowflake"  # EvalContext.state key: (last ms, sequence in that ms)


def _literal_kind(arg: Expr) -> str | None:
    """eKuiper's literal classes for parse-time checks: ``number``, ``string``, ``bool``, ``time`` or None."""
    if isinstance(arg, TimeUnit):
        return "time"
    if not isinstance(arg, Literal):
        return None
    value = arg.value
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


# ------------------------------------------------------------------------------------------------ props


def _check_props(call: Call) -> str | None:
    if call.args and _literal_kind(call.args[0]) not in (None, "string"):
        return "validate function props error: Expect string type for parameter 1"
    return None


def _snowflake(ctx: EvalContext) -> str:
    # 41 bits of ms since the epoch, 10 bits of node (1), 12 bits of sequence within the ms. The sequence is
    # kept per rule run (EvalContext.state), so ids are unique within a rule, as with one eKuiper node.
    now = ctx.now_ms()
    last, seq = ctx.state.get(_SNOWFLAKE, (0, 0))
    if now <= last:
        now, seq = last, seq + 1
        if seq >= 4096:
            now, seq = last + 1, 0  # sequence exhausted: borrow the next ms instead of waiting
    else:
        seq = 0
    ctx.state[_SNOWFLAKE] = (now, seq)
    return str(((now - SNOWFLAKE_EPOCH_MS) << 22) | (1 << 12) | seq)


def _props(a: Sequence[Any], ctx: EvalContext) -> Any:
    name = a[0]
    if not isinstance(name, str):
        raise EvalError(f"invalid input {go_str(name)}: must be property name of string type")
    if name == "et":
        return str(ctx.now_ms())  # eKuiper's built-in "et": the current time, ms, as a string
    if name == "snowflake":
        return _snowflake(ctx)
    return ctx.props.get(name)  # an unknown property is null


# ------------------------------------------------------------------------------------------------ keyed state


def _check_keyed_state(call: Call) -> str | None:
    if len(call.args) != 3:
        return None
    kind = _literal_kind(call.args[1])
    if kind not in (None, "string"):
        # eKuiper reports this one against parameter 1 (its ProduceErrInfo(0, ...)); kept for fidelity.
        return "validate function get_keyed_state error: Expect string type for parameter 1"
    target = call.args[1]
    if isinstance(target, Literal) and target.value not in KEYED_STATE_TYPES:
        return (
            "validate function get_keyed_state error: expect one of following value for the 2nd parameter: "
            + ", ".join(KEYED_STATE_TYPES)
        )
    return None


def _get_keyed_state(a: Sequence[Any], ctx: EvalContext) -> Any:
    key, target, default = a
    if not isinstance(key, str):
        raise EvalError(f"key {go_str(key)} is not a string")
    store = ctx.keyed_state
    if store is None:
        return default
    try:
        value = store.get(key, ctx.now_ms())
    except (KeyError, EngineError):
        return default  # as eKuiper: any failure to read the key yields the default
    return cast_value(value, str(target))


# ------------------------------------------------------------------------------------------------ delay


def calls_delay(select: Select) -> bool:
    """Whether any clause of ``select`` calls ``delay()`` (its operator then blocks per event)."""
    return any(
        isinstance(node, Call) and node.name == "delay"
        for _, top in select_exprs(select)
        for node in walk(top)
    )


def _check_delay(call: Call) -> str | None:
    if call.args and _literal_kind(call.args[0]) in ("string", "bool", "time"):
        return "validate function delay error: Expect number - float or int type for parameter 1"
    return None


def _delay(a: Sequence[Any], ctx: EvalContext) -> Any:
    ms = a[0]
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        raise EvalError(f"cannot convert {typed(ms)} to int")
    if ms > 0:
        ctx.delay_ms += int(ms)
    return a[1]


# ------------------------------------------------------------------------------------------------ extract


def _compile_extract(call: Call, compile_sub: Callable[[Expr], Fn]) -> Fn:
    # One row whose columns are the object's keys: the projection's set-returning step spreads the single
    # object element into the row (``ops.project.unnest_rows``), as eKuiper returns ``[]any{obj}``.
    arg = compile_sub(call.args[0])

    def extract(row: Row, ctx: EvalContext) -> Any:
        value = arg(row, ctx)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise EvalError("call func extract error: extract should use map")
        return [value]

    return extract


# ------------------------------------------------------------------------------------------------ dedup_trigger


_DEDUP_ERROR = "validate function dedup_trigger error: "


def _check_dedup_trigger(call: Call) -> str | None:
    if len(call.args) != 4:
        return None
    for position, arg in enumerate(call.args[:3], start=1):
        if not isinstance(arg, FieldRef):
            return f"{_DEDUP_ERROR}Expect field reference type for parameter {position}"
    last = call.args[3]
    if not (isinstance(last, Literal) and type(last.value) is int):
        return f"{_DEDUP_ERROR}Expect int type for parameter 4"
    return None


DEDUP_TRIGGER_REFUSAL = (
    "dedup_trigger is only supported as a SELECT field of a rule without window or join: it is not a per-row "
    "function but a stage that holds each row until its end time, and Oort has that stage only in front of the "
    "projection of a plain stream rule (runtime.ops.dedup)"
)


def _refuse_dedup_trigger(call: Call, compile_sub: Callable[[Expr], Fn]) -> Fn:
    raise PlanError(DEDUP_TRIGGER_REFUSAL)


def rule_state_defs() -> Iterable[FunctionDef]:
    yield scalar("rule_start", 0, 0, lambda a, ctx: ctx.rule_start)
    yield scalar(
        "window_trigger",
        0,
        0,
        lambda a, ctx: ctx.window_trigger if ctx.window_trigger is not None else ctx.window_end,
    )
    yield with_check(scalar("props", 1, 1, _props, nulls=False), _check_props)
    yield with_check(scalar("get_keyed_state", 3, 3, _get_keyed_state, nulls=False), _check_keyed_state)
    yield with_check(scalar("delay", 2, 2, _delay, nulls=False), _check_delay)
    yield FunctionDef("extract", kind="srf", min_args=1, max_args=1, compile=_compile_extract)
    yield FunctionDef(
        "dedup_trigger",
        min_args=4,
        max_args=4,
        compile=_refuse_dedup_trigger,
        check=_check_dedup_trigger,
    )
