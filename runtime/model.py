"""The data model every layer shares: rows, events, batches, emissions, error items and the outbox they go to.

A leaf module: it imports nothing of Oort's, so the SQL engine, the operators, the formats and the connectors
all import it downward.
"""

from __future__ import annotations

from typing import Any, Protocol, final

Row = dict[str, Any]
"""One row: column name -> value. Never mutated after decode (several rules may share it)."""


@final
class JoinedRow(dict[str, Any]):
    """A row of a rule that reads several sources (JOIN): the merged columns plus each source's own row.

    As a dict it holds every column of its parts, the left-most source winning on a conflict (what ``*`` and
    an unqualified name see, as eKuiper's ``JoinTuple``); ``tables`` maps each part's FROM/JOIN name (alias
    if given) to that source's row, for ``stream.col`` and ``stream.*``. Built by ``runtime.ops.join``.
    """

    __slots__ = ("tables",)

    def __init__(self, merged: Row, tables: dict[str, Row]) -> None:
        super().__init__(merged)
        self.tables = tables


@final
class Event:
    """One decoded source message: its row, ingest/event time in epoch ms and optional source metadata."""

    __slots__ = ("data", "meta", "ts")

    def __init__(self, data: Row, ts: int, meta: Row | None = None) -> None:
        self.data = data
        self.ts = ts
        self.meta = meta

    def __repr__(self) -> str:
        return f"Event(data={self.data!r}, ts={self.ts}, meta={self.meta!r})"


@final
class ErrorItem:
    """A runtime error travelling with the data (rule option ``sendError``): sinks see ``{"error": message}``."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def as_row(self) -> Row:
        return {"error": self.message}

    def __repr__(self) -> str:
        return f"ErrorItem({self.message!r})"


Batch = list[Event | ErrorItem]
"""What crosses the source -> operator channel: events (and decode errors) in arrival order."""


Emission = list[Row] | ErrorItem
"""What an operator sends to the sinks: the rows of one result, or an error (sent only with ``sendError``)."""


class Outbox(Protocol):
    """Where a source puts its batches: the rule's bounded input channel, behind its ``bufferFullPolicy``.

    ``send`` blocks while the buffer is full under the default policy ``block`` (so a socket source stops
    reading and TCP pushes back); under ``dropOldest``/``dropNewest`` it never blocks and counts what it drops.
    """

    async def send(self, batch: Batch) -> None: ...
