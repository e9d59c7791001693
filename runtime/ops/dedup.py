"""``dedup_trigger(startField, endField, nowField, expire)``: eKuiper's trigger stage between WHERE and SELECT,
as plain calls — no trio (eKuiper docs sqls/functions/other_functions.md).

Each row asks for the time range ``[start, end]`` its fields name. The stage holds the row until ``end`` is
reached — by the ``now`` of a later row, or by a timer the operator arms (``DedupTrigger`` says how long) — then
releases it with a column (the field's alias, else ``dedup_trigger``) listing the parts of its range that no
earlier released row covered, as ``[{"start_key": "<ms>", "end_key": "<ms>"}]``. Ranges older than
``now - expire`` are forgotten. The histogram algorithm is eKuiper's ``doTrigger`` (``dedup_trigger_node.go``).
"""

from __future__ import annotations

import math
from bisect import insort
from typing import Any, final

import attrs

from runtime.errors import PlanError
from runtime.model import Event, Row
from runtime.sql import functions
from runtime.sql.ast import Call, Expr, FieldRef, Literal, Select, SelectField, walk
from runtime.sql.values import EvalError, go_str

Ranges = list[dict[str, str]]
Histogram = list[tuple[int, int]]


@final
@attrs.frozen
class DedupSpec:
    """One ``dedup_trigger`` field: the output column and the three fields and expiry it reads."""

    column: str
    start_field: str
    end_field: str
    now_field: str
    expire: int


def extract_dedup(select: Select) -> tuple[DedupSpec, Select] | None:
    """The ``dedup_trigger`` SELECT field and the query reading its column instead; None without one.

    Raises:
      PlanError: more than one such field, or a query shape the stage does not combine with (window, join,
        analytic or set-returning functions), named in the message.
    """
    found = [
        (i, f)
        for i, f in enumerate(select.fields)
        if isinstance(f.expr, Call) and f.expr.name == "dedup_trigger"
    ]
    if not found:
        return None
    if len(found) > 1:
        raise PlanError("only one dedup_trigger field is supported per query")
    for node in walk(tuple(f.expr for f in select.fields) + ((select.where,) if select.where else ())):
        if not isinstance(node, Call):
            continue
        fdef = functions.lookup(node.name)
        if fdef is not None and fdef.kind in ("analytic", "srf", "window_func", "multi"):
            raise PlanError(
                f"{node.name}() cannot be combined with dedup_trigger: rows are projected when released"
            )
    index, field = found[0]
    call = field.expr
    assert isinstance(call, Call)
    refs = [arg.name for arg in call.args[:3] if isinstance(arg, FieldRef)]
    last = call.args[3]
    assert len(refs) == 3 and isinstance(last, Literal)  # the parser checked the arguments
    column = field.alias or "dedup_trigger"
    spec = DedupSpec(column, refs[0], refs[1], refs[2], int(last.value))
    replaced: Expr = FieldRef(None, column)
    fields = list(select.fields)
    fields[index] = SelectField(replaced, field.alias or column, field.invisible)
    return spec, attrs.evolve(select, fields=tuple(fields))


def dedup_ranges(
    hg: Histogram, start: int, end: int, now: int, expire: int
) -> tuple[Ranges | None, Histogram]:
    """The parts of ``[start, end]`` not in ``hg`` (the ranges sent so far, sorted) and the updated histogram.

    ``None`` (eKuiper's nil slice) when the whole range expired or was already sent.
    """
    result: Ranges = []
    leftmost = now - expire
    if end < leftmost:
        return None, hg
    start = max(start, leftmost)
    if hg:
        hg = [slot for slot in hg if slot[1] >= leftmost]  # sorted: the expired ones lead
        n2 = 2 * len(hg)
        # Positions 2i = the gap before slot i, 2i+1 = inside slot i; n2 = after the last slot.
        left = right = n2
        for i, (lo, hi) in enumerate(hg):
            if left == n2:
                if start < lo:
                    left = 2 * i
                elif start < hi:
                    left = 2 * i + 1
            if left < n2:
                if end <= lo:
                    right = 2 * i
                    break
                if end <= hi:
                    right = 2 * i + 1
                    break
        li = left // 2
        if left == right:
            if left % 2 == 0:
                result.append(_range(start, end))
                hg = [*hg[:li], (start, end), *hg[li:]]
        else:
            right_gap = right > 0 and right % 2 == 0
            last = right // 2 - 1 if right_gap else (right - 1) // 2
            if left % 2 == 0:
                result.append(_range(start, hg[li][0]))
            result.extend(_range(hg[i][1], hg[i + 1][0]) for i in range(li, last))
            if right_gap:
                result.append(_range(hg[last][1], end))
            lo = start if left % 2 == 0 else hg[li][0]
            hi = end if right_gap else hg[last][1]
            hg = [*hg[:li], (lo, hi), *hg[last + 1 :]]
    else:
        result.append(_range(start, end))
        hg = [(start, end)]
    return (result or None), hg


def _range(start: int, end: int) -> dict[str, str]:
    return {"start_key": str(start), "end_key": str(end)}


@final
@attrs.frozen
class _Request:
    start: int
    end: int
    now: int
    event: Event


def _end(request: _Request) -> int:
    return request.end


@final
class DedupTrigger:
    """The held rows of one rule run and the histogram of the ranges released so far."""

    __slots__ = ("_head", "_hg", "_queue", "_spec")

    def __init__(self, spec: DedupSpec) -> None:
        self._spec = spec
        # Held requests sorted by end, equal ends in arrival order (insort puts a new one after its equals);
        # the released ones before ``_head`` are dropped in bulk, so a release is O(1), an insert O(log n) +
        # a move of the tail.
        self._queue: list[_Request] = []
        self._head = 0
        self._hg: Histogram = []

    def add(self, event: Event) -> tuple[list[Event], int | None]:
        """Hold ``event``, then release every held row whose end its ``now`` reached.

        Returns:
          The released events (their rows carry the ranges column) and, when rows stay held, how many ms
          after now the operator's timer must call ``fire`` (the next end minus this ``now``), else None.

        Raises:
          EvalError: a field is missing or not an integer, or start is not before end (eKuiper's messages).
        """
        row = event.data
        start = self._int(row, self._spec.start_field, "start")
        end = self._int(row, self._spec.end_field, "end")
        if start >= end:
            raise EvalError(f"dedup_trigger start time {start} is greater than end time {end}")
        now = self._int(row, self._spec.now_field, "now")
        request = _Request(start, end, now, event)
        insort(self._queue, request, lo=self._head, key=_end)
        return self._trigger(now)

    def fire(self) -> tuple[list[Event], int | None]:
        """The timer went off: release the earliest-ending rows (``add``'s Returns)."""
        return self._trigger(None)

    @property
    def held(self) -> int:
        return len(self._queue) - self._head

    def _trigger(self, now: int | None) -> tuple[list[Event], int | None]:
        out: list[Event] = []
        queue = self._queue
        wait: int | None = None
        while self._head < len(queue):
            head = queue[self._head]
            if now is None:
                now = head.end  # a timer fires for the head's end
            if head.end > now:
                wait = head.end - now
                break
            self._head += 1
            ranges, self._hg = dedup_ranges(self._hg, head.start, head.end, head.now, self._spec.expire)
            data: Row = {**head.event.data, self._spec.column: ranges}
            out.append(Event(data, head.event.ts, head.event.meta))
        if self._head and self._head * 2 >= len(queue):
            del queue[: self._head]  # amortised: at most as many moves as releases
            self._head = 0
        return out, wait

    @staticmethod
    def _int(row: Row, field: str, what: str) -> int:
        if field not in row:
            raise EvalError(f"dedup_trigger {field} is missing")
        value: Any = row[field]
        if type(value) is int:
            return value
        if type(value) is float and math.isfinite(value):
            return int(value)
        raise EvalError(f"dedup_trigger {what} time {go_str(value)} is not int64")
