"""Rule hit state (eKuiper docs sqls/functions/other_functions.md; sqls/functions/aggregate_functions.md):
``last_hit_count()``/``last_hit_time()`` and their window
counterparts ``last_agg_hit_count()``/``last_agg_hit_time()``.

A *hit* is a row passing the filtering clause the function is used in (WHERE, a sliding window's
``OVER (WHEN ...)``) or, for the aggregate variants, a window group passing HAVING; without such a clause
every output row is a hit. The state lives in the rule's ``EvalContext.state`` under fixed keys (one
counter and one time per rule, as eKuiper's ``$$last_hit_*`` keys), and the functions read the state
*before* the current hit: the operators call ``record_hit``/``record_agg_hit`` once the row has been
judged (and, in the fused WHERE + SELECT operator, projected).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from runtime.model import Row
from runtime.sql.ast import Call, Expr, walk
from runtime.sql.functions.base import FunctionDef
from runtime.sql.values import EvalContext, Fn

HIT_COUNT = "$$last_hit_count"
HIT_TIME = "$$last_hit_time"
AGG_HIT_COUNT = "$$last_agg_hit_count"
AGG_HIT_TIME = "$$last_agg_hit_time"

HIT_FUNCTIONS = frozenset({"last_hit_count", "last_hit_time"})
AGG_HIT_FUNCTIONS = frozenset({"last_agg_hit_count", "last_agg_hit_time"})


def record_hit(ctx: EvalContext) -> None:
    """One more hit of the rule, at the current event's time (``ctx.ts``)."""
    state = ctx.state
    state[HIT_COUNT] = state.get(HIT_COUNT, 0) + 1
    state[HIT_TIME] = ctx.ts


def record_agg_hit(ctx: EvalContext) -> None:
    """One more window group passed HAVING; ``ctx.ts`` is the group's event time (the window end)."""
    state = ctx.state
    state[AGG_HIT_COUNT] = state.get(AGG_HIT_COUNT, 0) + 1
    state[AGG_HIT_TIME] = ctx.ts


def calls_any(exprs: Iterable[Expr | None], names: frozenset[str]) -> bool:
    """Whether any of ``exprs`` calls one of the functions ``names`` (lower-case)."""
    for expr in exprs:
        if expr is None:
            continue
        for node in walk(expr):
            if isinstance(node, Call) and node.name in names:
                return True
    return False


def recording_hits(fn: Fn) -> Fn:
    """``fn`` (a condition) that also records a hit each time it is true."""

    def condition(row: Row, ctx: EvalContext) -> Any:
        result = fn(row, ctx)
        if result is True:
            record_hit(ctx)
        return result

    return condition


def _reader(key: str) -> Callable[[Call, Callable[[Expr], Fn]], Fn]:
    def compile_hook(call: Call, compile_sub: Callable[[Expr], Fn]) -> Fn:
        return lambda row, ctx: ctx.state.get(key, 0)

    return compile_hook


def hit_defs() -> Iterable[FunctionDef]:
    yield FunctionDef("last_hit_count", min_args=0, max_args=0, compile=_reader(HIT_COUNT))
    yield FunctionDef("last_hit_time", min_args=0, max_args=0, compile=_reader(HIT_TIME))
    # Aggregate kind, as in eKuiper: they make a window query one row per group and may sit in HAVING.
    yield FunctionDef(
        "last_agg_hit_count", kind="aggregate", min_args=0, max_args=0, compile=_reader(AGG_HIT_COUNT)
    )
    yield FunctionDef(
        "last_agg_hit_time", kind="aggregate", min_args=0, max_args=0, compile=_reader(AGG_HIT_TIME)
    )
