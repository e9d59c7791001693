"""Joins (eKuiper docs sqls/query_language_elements.md, JOIN) and the table state they read, as plain calls —
no trio.

A rule over several sources tags every row with the source it came from (``source_row``: a ``JoinedRow`` of
one part). ``JoinPlan.join`` combines the parts left to right as written: INNER keeps matching pairs, LEFT and
RIGHT also keep their side's unmatched rows, FULL both, CROSS is the cartesian product. ``ON`` is evaluated on
the merged candidate row, so it may use ``a.col``, unqualified names (left-most source wins, as eKuiper's
``JoinTuple``) and the SELECT's aliases. An evaluation error fails the whole join (``run Join error: ...``).

Stream–stream joins run over a window's rows (``join_events``); a stream–table join without a window joins each
stream event with the tables' current rows. Tables: ``ScanTable`` keeps the latest RETAIN_SIZE rows (or, for a
file, the rows of the last read), ``LookupTable`` keeps the latest row per KEY value and is probed by the
equality predicate on its key.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, final

import attrs

from runtime.errors import PlanError
from runtime.model import Event, JoinedRow, Row
from runtime.sql.ast import BinaryOp, Expr, FieldRef, Join, Select, Wildcard, walk
from runtime.sql.expr import EvalContext, EvalError, Fn, RefResolver, compile_expr

JoinKind = Literal["inner", "left", "right", "full", "cross"]
DEFAULT_RETAIN_SIZE: Final = 1  # rows a non-file scan table keeps when RETAIN_SIZE is not given
ROWKIND_DELETE: Final = "delete"


def source_row(ref: str, data: Row) -> JoinedRow:
    """One source's row, tagged with its FROM/JOIN name so joins and ``ref.col`` can find it."""
    return JoinedRow(data, {ref: data})


def merge(left: JoinedRow, right: JoinedRow) -> JoinedRow:
    """The combined row of two join parts; on a column present in both, the left one wins."""
    merged = dict(left)
    for key, value in right.items():
        merged.setdefault(key, value)
    return JoinedRow(merged, {**left.tables, **right.tables})


def emitter(row: Row) -> str | None:
    """The FROM/JOIN name a single-source row was tagged with, or None for an untagged or joined row."""
    if type(row) is JoinedRow and len(row.tables) == 1:
        return next(iter(row.tables))
    return None


@final
class ScanTable:
    """A scan table's rows as the join sees them: the latest ``retain`` rows, or (``snapshot``) the last batch.

    ``retain`` None keeps every row. A file table is a snapshot: each read of the file replaces the content.
    """

    __slots__ = ("_rows", "_snapshot")

    def __init__(self, retain: int | None, *, snapshot: bool = False) -> None:
        self._rows: deque[JoinedRow] = deque(maxlen=retain)
        self._snapshot = snapshot

    def update(self, rows: Sequence[JoinedRow]) -> None:
        """Apply one batch from the table's source."""
        if self._snapshot:
            self._rows.clear()
        self._rows.extend(rows)

    def rows(self) -> list[JoinedRow]:
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


@final
class LookupTable:
    """A lookup table: the latest row per value of its KEY column (``rowkind`` ``delete`` removes a key)."""

    __slots__ = ("_by_key", "_key", "_rowkind")

    def __init__(self, key: str, rowkind_field: str = "rowkind") -> None:
        self._key = key
        self._rowkind = rowkind_field
        self._by_key: dict[Any, JoinedRow] = {}

    def update(self, rows: Sequence[JoinedRow]) -> None:
        for row in rows:
            value = row.get(self._key)
            if value is None or isinstance(value, dict | list):
                continue  # a row without a usable key cannot be looked up
            if row.get(self._rowkind) == ROWKIND_DELETE:
                self._by_key.pop(value, None)
            else:
                self._by_key[value] = row

    def find(self, value: Any) -> list[JoinedRow]:
        if value is None or isinstance(value, dict | list):
            return []
        row = self._by_key.get(value)
        return [row] if row is not None else []

    def rows(self) -> list[JoinedRow]:
        return list(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)


Table = ScanTable | LookupTable


def make_table(kind: str, key: str, retain_size: int, source_type: str) -> Table:
    """The state of one table for one rule run, from its KIND, KEY and RETAIN_SIZE options and connector type.

    A scan table without RETAIN_SIZE keeps every row of the last read for a file (eKuiper docs
    sqls/streams.md, stream properties
    "file ⇒ read all") and ``DEFAULT_RETAIN_SIZE`` rows otherwise.
    """
    if kind == "lookup":
        return LookupTable(key)
    if retain_size > 0:
        return ScanTable(retain_size)
    if source_type == "file":
        return ScanTable(None, snapshot=True)
    return ScanTable(DEFAULT_RETAIN_SIZE)


@final
class TableSet:
    """The tables one join rule reads, by FROM/JOIN name; their sources update them, joins read them."""

    __slots__ = ("_lookups", "_parts", "_scans", "rows_seen")

    def __init__(self, tables: Mapping[str, Table]) -> None:
        self._scans = {ref: t for ref, t in tables.items() if isinstance(t, ScanTable)}
        self._lookups = {ref: t for ref, t in tables.items() if isinstance(t, LookupTable)}
        self._parts: dict[str, Sequence[JoinedRow]] | None = None  # parts() until the next scan update
        self.rows_seen = 0  # rows applied so far, all tables (metrics)

    def update(self, ref: str, rows: Sequence[JoinedRow]) -> None:
        table = self.get(ref)
        if table is not None:
            table.update(rows)
            self.rows_seen += len(rows)
            if ref in self._scans:
                self._parts = None

    def get(self, ref: str) -> Table | None:
        scan = self._scans.get(ref)  # not ``or``: an empty table is falsy
        return scan if scan is not None else self._lookups.get(ref)

    def parts(self) -> Mapping[str, Sequence[JoinedRow]]:
        """Every scan table's current rows, by name (lookup tables are probed instead).

        Built once per table update, not per stream event: callers must not mutate it (copy to add parts).
        """
        if self._parts is None:
            self._parts = {ref: tuple(table.rows()) for ref, table in self._scans.items()}
        return self._parts

    @property
    def lookups(self) -> Mapping[str, LookupTable]:
        return self._lookups


@final
@attrs.frozen
class JoinStep:
    """One ``<kind> JOIN <ref> [ON ...]``. ``probe`` (lookup tables): the ON side equal to the table's key."""

    kind: JoinKind
    ref: str
    on: Fn | None = None
    probe: Fn | None = None


@final
class JoinPlan:
    """The compiled JOIN clauses of one query. Build with ``compile_join``."""

    __slots__ = ("first", "steps")

    def __init__(self, first: str, steps: Sequence[JoinStep]) -> None:
        self.first = first
        self.steps = tuple(steps)

    @property
    def refs(self) -> tuple[str, ...]:
        """Every source's FROM/JOIN name, in query order."""
        return (self.first, *(step.ref for step in self.steps))

    def join(
        self,
        parts: Mapping[str, Sequence[JoinedRow]],
        ctx: EvalContext,
        lookups: Mapping[str, LookupTable] | None = None,
    ) -> list[JoinedRow]:
        """Join the rows of every source, left to right.

        Args:
          parts: each source's rows by FROM/JOIN name (a window's rows of a stream, a scan table's content).
          lookups: lookup tables by name; their rows are found by probing, not listed in ``parts``.

        Raises:
          EvalError: ``run Join error: ...`` when an ON condition cannot be evaluated.
        """
        rows = list(parts.get(self.first, ()))
        try:
            for step in self.steps:
                table = lookups.get(step.ref) if lookups is not None else None
                if table is not None and step.probe is not None:
                    rows = _probe(step, rows, table, ctx)
                else:
                    rows = _join_step(step, rows, parts.get(step.ref, ()), ctx)
        except EvalError as exc:
            raise EvalError(f"run Join error: {exc.message}") from None
        return rows

    def join_events(
        self, events: Sequence[Event], ctx: EvalContext, tables: TableSet | None = None
    ) -> list[Event]:
        """A window's rows (each tagged by ``source_row``) joined, with the tables' current rows when given;
        each result keeps the time and metadata of its left-most stream part.

        Raises:
          EvalError: ``run Join error: ...``.
        """
        parts: dict[str, list[JoinedRow]] = {}
        origin: dict[int, Event] = {}
        for event in events:
            row = event.data
            ref = emitter(row)
            if ref is None or type(row) is not JoinedRow:
                continue
            parts.setdefault(ref, []).append(row)
            origin[id(row.tables[ref])] = event
        out: list[Event] = []
        joined: Mapping[str, Sequence[JoinedRow]] = parts if tables is None else {**tables.parts(), **parts}
        for row in self.join(joined, ctx, tables.lookups if tables is not None else None):
            first = next((e for part in row.tables.values() if (e := origin.get(id(part)))), None)
            out.append(
                Event(row, first.ts, first.meta) if first is not None else Event(row, ctx.ts, ctx.meta)
            )
        return out


def _matches(on: Fn | None, row: JoinedRow, ctx: EvalContext) -> bool:
    return on is None or on(row, ctx) is True


def _join_step(
    step: JoinStep, lefts: Sequence[JoinedRow], rights: Sequence[JoinedRow], ctx: EvalContext
) -> list[JoinedRow]:
    kind, on = step.kind, step.on
    if kind == "cross":
        return [merge(left, right) for left in lefts for right in rights]
    out: list[JoinedRow] = []
    if kind == "right":
        for right in rights:
            hit = False
            for left in lefts:
                row = merge(left, right)
                if _matches(on, row, ctx):
                    out.append(row)
                    hit = True
            if not hit:
                out.append(right)
        return out
    matched = [False] * len(rights)
    for left in lefts:
        hit = False
        for i, right in enumerate(rights):
            row = merge(left, right)
            if _matches(on, row, ctx):
                out.append(row)
                hit = matched[i] = True
        if not hit and kind in ("left", "full"):
            out.append(left)
    if kind == "full":
        out.extend(right for right, seen in zip(rights, matched, strict=True) if not seen)
    return out


def _probe(
    step: JoinStep, lefts: Sequence[JoinedRow], table: LookupTable, ctx: EvalContext
) -> list[JoinedRow]:
    assert step.probe is not None
    out: list[JoinedRow] = []
    for left in lefts:
        hit = False
        for right in table.find(step.probe(left, ctx)):
            row = merge(left, right)
            if _matches(step.on, row, ctx):
                out.append(row)
                hit = True
        if not hit and step.kind == "left":
            out.append(left)
    return out


def compile_join(select: Select, lookup_keys: Mapping[str, str] | None = None) -> JoinPlan:
    """Compile the JOIN clauses of ``select``; ON may use the SELECT's aliases.

    Args:
      lookup_keys: FROM/JOIN name -> KEY column of each lookup table joined.

    Raises:
      PlanError: a lookup table first in FROM, joined with RIGHT/FULL/CROSS, or without an equality on its key.
    """
    lookup_keys = lookup_keys or {}
    aliases = {f.alias: f.expr for f in select.fields if f.alias and not isinstance(f.expr, Wildcard)}

    def resolve(ref: FieldRef) -> Fn | None:
        expr = aliases.get(ref.name)
        return compile_expr(expr) if expr is not None else None

    first = select.sources[0].ref_name
    if first in lookup_keys:
        raise PlanError(f"lookup table {first} cannot be the first source; join it to a stream")
    steps = [_compile_step(join, resolve, aliases, lookup_keys) for join in select.joins]
    return JoinPlan(first, steps)


def _compile_step(
    join: Join,
    resolve: RefResolver,
    aliases: Mapping[str, Expr],
    lookup_keys: Mapping[str, str],
) -> JoinStep:
    ref = join.source.ref_name
    kind: JoinKind = join.kind  # type: ignore[assignment]  # the parser only produces the five kinds
    on = compile_expr(join.on, resolve=resolve) if join.on is not None else None
    key = lookup_keys.get(ref)
    if key is None:
        return JoinStep(kind, ref, on)
    if kind not in ("inner", "left"):
        raise PlanError(f"lookup table {ref} supports only INNER and LEFT joins, not {kind.upper()}")
    probe = _key_probe(join.on, ref, key, aliases) if join.on is not None else None
    if probe is None:
        raise PlanError(f"lookup table {ref} join needs an equality on its key: ON {ref}.{key} = <expr>")
    return JoinStep(kind, ref, on, compile_expr(probe, resolve=resolve))


def _key_probe(on: Expr, ref: str, key: str, aliases: Mapping[str, Expr]) -> Expr | None:
    """The expression compared with ``ref.key`` in a top-level AND chain of ON, when it does not read ``ref``."""
    if isinstance(on, BinaryOp) and on.op == "AND":
        return _key_probe(on.left, ref, key, aliases) or _key_probe(on.right, ref, key, aliases)
    if not isinstance(on, BinaryOp) or on.op != "=":
        return None
    for this, other in ((on.left, on.right), (on.right, on.left)):
        target = aliases.get(this.name, this) if isinstance(this, FieldRef) and this.stream is None else this
        if target == FieldRef(ref, key) and not _reads(other, ref, aliases):
            return other
    return None


def _reads(expr: Expr, ref: str, aliases: Mapping[str, Expr]) -> bool:
    for node in walk(expr):
        if isinstance(node, FieldRef):
            if node.stream == ref:
                return True
            alias = aliases.get(node.name) if node.stream is None else None
            if alias is not None and alias is not expr and _reads(alias, ref, {}):
                return True
    return False
