"""Window planning: a query with a window in GROUP BY -> its ``WindowPlan`` (the window spec from the kind's row in
``runtime.sql.windows``, the FILTER and OVER (WHEN) conditions, the WHERE pushed below the window, and the
compiled post-window query of ``runtime.ops.aggregate``).
"""

from __future__ import annotations

from typing import final

import attrs

from runtime.errors import PlanError
from runtime.ops.aggregate import WindowQuery, compile_window_query, reads_hits
from runtime.ops.window import UNIT_MS, WindowSpec
from runtime.sql.ast import Call, Expr, Literal, Select, TimeUnit
from runtime.sql.expr import Fn, compile_expr
from runtime.sql.functions import lookup
from runtime.sql.functions.hits import HIT_FUNCTIONS, calls_any, recording_hits
from runtime.sql.windows import BY_FUNCTION, BY_KIND, WindowKindName


@final
@attrs.frozen
class WindowPlan:
    """A window rule's compiled parts: the window spec, its FILTER and OVER (WHEN) conditions, the WHERE that
    runs per event below the window (tumbling, hopping, session, state), and the post-window query."""

    spec: WindowSpec
    filter: Fn | None
    trigger: Fn | None
    where: Fn | None
    query: WindowQuery
    state: tuple[Fn, ...] = ()  # STATEWINDOW's begin (and emit) conditions
    partition: tuple[Fn, ...] = ()  # its OVER (PARTITION BY ...)


def window_call(select: Select) -> Call | None:
    """The window function call in GROUP BY, if any."""
    for expr in select.group_by:
        if isinstance(expr, Call):
            fdef = lookup(expr.name)
            if fdef is not None and fdef.kind == "window":
                return expr
    return None


def plan_window(
    select: Select, *, event_time: bool = False, send_nil_field: bool = False, push_where: bool = True
) -> WindowPlan | None:
    """The window plan of a query with a window in GROUP BY; None for a query without one.

    ``push_where`` False keeps WHERE after the window (a join's WHERE reads the joined rows).

    Raises:
      PlanError: GROUP BY without a window, or a window kind not supported.
    """
    call = window_call(select)
    if call is None:
        if select.group_by:
            raise PlanError("select stmt group by should be used with window")
        return None
    spec = window_spec(call)
    dims = tuple(e for e in select.group_by if e is not call)
    # eKuiper pushes WHERE below every window but count and sliding ones, in processing time only (§C.4, C.6).
    pushed = push_where and not event_time and BY_KIND[spec.kind].where_below
    query = compile_window_query(
        attrs.evolve(select, group_by=dims), where_after_window=not pushed, send_nil_field=send_nil_field
    )
    when = call.over.when if call.over is not None else None
    trigger = compile_expr(when) if when is not None else None
    if trigger is not None and calls_any([when], HIT_FUNCTIONS):
        trigger = recording_hits(trigger)  # each triggering event is a hit (last_hit_time() in OVER WHEN)
    where = compile_expr(select.where) if pushed and select.where is not None else None
    if where is not None and reads_hits(select.where, select):
        where = recording_hits(where)
    state: tuple[Fn, ...] = ()
    partition: tuple[Fn, ...] = ()
    if spec.kind == "state":
        state = tuple(compile_expr(arg) for arg in call.args)
        partition = tuple(compile_expr(e) for e in call.over.partition_by) if call.over is not None else ()
        trigger = None  # a state window's conditions are its triggers
    return WindowPlan(
        spec=spec,
        filter=compile_expr(call.filter) if call.filter is not None else None,
        trigger=trigger,
        where=where,
        query=query,
        state=state,
        partition=partition,
    )


def window_spec(call: Call) -> WindowSpec:
    """``TUMBLINGWINDOW(ss, 1)`` and friends -> ``WindowSpec``, by the kind's row in ``WINDOW_KINDS`` (arguments
    were validated by the parser)."""
    kind = BY_FUNCTION[call.name]
    if kind.conditions:
        return WindowSpec(kind.kind, 0)
    if not kind.timed:
        return _spec(kind.kind, kind.params, [_int_arg(a) for a in call.args], "ms")
    unit_expr = call.args[0]
    unit = unit_expr.unit if isinstance(unit_expr, TimeUnit) else "ms"
    scale = UNIT_MS[unit]
    return _spec(kind.kind, kind.params, [_int_arg(a) * scale for a in call.args[1:]], unit)


def _spec(kind: WindowKindName, params: tuple[str, ...], values: list[int], unit: str) -> WindowSpec:
    given = dict(zip(params, values, strict=False))  # a missing optional argument keeps the field's default
    return WindowSpec(
        kind,
        given["size"],
        hop=given.get("hop", 0),
        delay=given.get("delay", 0),
        timeout=given.get("timeout", 0),
        unit=unit,
    )


def _int_arg(expr: Expr) -> int:
    if isinstance(expr, Literal) and type(expr.value) is int:
        return expr.value
    raise PlanError(f"window argument {expr} must be an integer literal")
