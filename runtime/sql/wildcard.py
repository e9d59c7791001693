"""``*`` and ``<stream>.*`` in a SELECT list or as a function argument (``changed_cols(..., *)``), compiled once.

The projection and ``changed_cols`` both read a wildcard the same way: the row's columns (only the named
source's part of a joined row for ``demo.*``), less ``EXCEPT``, with ``REPLACE`` applied last (it wins over
EXCEPT). ``wildcard_emit`` builds the one closure they share; the checks that depend on the query (which
source, any EXCEPT or REPLACE) are decided here, at compile time, not per row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runtime.model import JoinedRow, Row
from runtime.sql.ast import Wildcard
from runtime.sql.values import EvalContext, Fn

WildcardEmit = Callable[[Row, EvalContext, Row], None]
"""(row, ctx, out): write the wildcard's columns into ``out``."""


def wildcard_emit(wildcard: Wildcard, replace: Sequence[tuple[str, Fn]], *, keep_nulls: bool) -> WildcardEmit:
    """The closure writing ``wildcard``'s columns of a row into an output dict.

    Args:
      replace: the compiled ``REPLACE`` fields as (name, fn), in order; the caller decides how their errors
        read (the projection labels them with the field).
      keep_nulls: write null columns too (``sendNilField``; ``changed_cols`` sees every column).
    """
    excluded = frozenset(wildcard.except_)
    replaced = tuple(replace)
    stream = wildcard.stream

    def copy(source: Row, out: Row) -> None:
        if keep_nulls and not excluded:
            out.update(source)
            return
        for key, value in source.items():
            if key not in excluded and (value is not None or keep_nulls):
                out[key] = value

    def apply_replace(row: Row, ctx: EvalContext, out: Row) -> None:
        for key, fn in replaced:
            value = fn(row, ctx)
            if value is not None or keep_nulls:
                out[key] = value

    if stream is None:
        if not replaced:
            return lambda row, ctx, out: copy(row, out)

        def emit_all(row: Row, ctx: EvalContext, out: Row) -> None:
            copy(row, out)
            apply_replace(row, ctx, out)

        return emit_all

    def emit_stream(row: Row, ctx: EvalContext, out: Row) -> None:
        # ``demo.*``: only that source's columns of a joined row (a plain row is all one source's).
        copy((row.tables.get(stream) or {}) if type(row) is JoinedRow else row, out)
        if replaced:
            apply_replace(row, ctx, out)

    return emit_stream
