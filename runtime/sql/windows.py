"""The window kinds: one row per GROUP BY window function, read by the parse-time argument checks
(``runtime.sql.functions.other``), by window planning (``runtime.plan.window``) and by the window factory
(``runtime.ops.window.make_window``, which finds each kind's class by ``WindowKind.kind``).

A new window kind is one row here and one ``Window`` class registered for its ``kind`` in ``runtime.ops.window``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Literal, final

import attrs

WindowKindName = Literal["tumbling", "hopping", "sliding", "session", "count", "state"]

ArgsCheck = Callable[[list[int]], str | None]
"""An extra check of a window's integer arguments (after the unit): an error text, or None when they are fine."""


def _count_args(values: list[int]) -> str | None:
    if len(values) == 2 and values[1] > values[0]:
        return f"The second parameter value {values[1]} should be less than the first parameter {values[0]}."
    return None


@final
@attrs.frozen
class WindowKind:
    """One window kind as the SQL writes it and as the engine runs it.

    Attributes:
      function: the GROUP BY function name, lower case (``tumblingwindow``).
      kind: the ``WindowSpec.kind`` it plans to, which names its ``Window`` class.
      arities: the argument counts accepted.
      timed: the first argument is a time unit (``ss``...) and the integer arguments are durations in it.
      params: the ``WindowSpec`` fields the integer arguments fill, in order (a missing one keeps its default).
      where_below: in processing time, WHERE runs per event below the window instead of on its panes (as
        eKuiper pushes its filter down for these kinds).
      conditions: the arguments are conditions (STATEWINDOW), not integer literals.
      check: an extra check of the integer arguments.
    """

    function: str
    kind: WindowKindName
    arities: tuple[int, ...]
    timed: bool
    params: tuple[str, ...]
    where_below: bool
    conditions: bool = False
    check: ArgsCheck | None = None


WINDOW_KINDS: tuple[WindowKind, ...] = (
    WindowKind("tumblingwindow", "tumbling", (2,), timed=True, params=("size",), where_below=True),
    WindowKind("hoppingwindow", "hopping", (3,), timed=True, params=("size", "hop"), where_below=True),
    WindowKind("slidingwindow", "sliding", (2, 3), timed=True, params=("size", "delay"), where_below=False),
    WindowKind("sessionwindow", "session", (3,), timed=True, params=("size", "timeout"), where_below=True),
    WindowKind(
        "countwindow",
        "count",
        (1, 2),
        timed=False,
        params=("size", "hop"),
        where_below=False,
        check=_count_args,
    ),
    WindowKind("statewindow", "state", (1, 2), timed=False, params=(), where_below=True, conditions=True),
)

BY_FUNCTION: Mapping[str, WindowKind] = MappingProxyType({k.function: k for k in WINDOW_KINDS})
BY_KIND: Mapping[str, WindowKind] = MappingProxyType({k.kind: k for k in WINDOW_KINDS})
