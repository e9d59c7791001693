"""Per-operator counters of a running rule and the eKuiper-shaped status JSON built from them (eKuiper docs
api/restapi/rules.md, rule status)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, final

import attrs
import trio

from runtime.model import Row


@final
@attrs.define
class ConnectionMetrics:
    """Connection state a source or sink reports (eKuiper docs api/restapi/rules.md, rule status
    ``connection_*`` metrics)."""

    status: int = 0  # 1 connected, 0 connecting, -1 disconnected
    last_connected_time: int = 0
    last_disconnected_time: int = 0
    last_disconnected_message: str = ""
    last_try_time: int = 0


def mirror_connection(source: ConnectionMetrics, dest: ConnectionMetrics) -> None:
    """Copy a shared connection's state into one user's metrics (each source or sink reports its own)."""
    dest.status = source.status
    dest.last_connected_time = source.last_connected_time
    dest.last_disconnected_time = source.last_disconnected_time
    dest.last_disconnected_message = source.last_disconnected_message
    dest.last_try_time = source.last_try_time


METRIC_NAMES = (
    "records_in_total",
    "records_out_total",
    "messages_processed_total",
    "process_latency_us",
    "buffer_length",
    "last_invocation",
    "exceptions_total",
    "last_exception",
    "last_exception_time",
)
CONNECTION_METRIC_NAMES = (
    "connection_status",
    "connection_last_connected_time",
    "connection_last_disconnected_time",
    "connection_last_disconnected_message",
    "connection_last_try_time",
)


@final
class OpMetrics:
    """Counters of one node (source, operator or sink). Plain attributes: the hot path only adds to them.

    ``name`` is the eKuiper key prefix, e.g. ``source_demo``, ``op_2_filter`` or ``sink_file_0``.
    ``buffer`` returns the current input queue length; ``connection`` is set for sources and sinks.
    """

    __slots__ = (
        "buffer",
        "connection",
        "dropped",
        "exceptions",
        "last_exception",
        "last_exception_time",
        "last_invocation",
        "messages_processed",
        "name",
        "process_latency_us",
        "records_in",
        "records_out",
    )

    def __init__(
        self,
        name: str,
        buffer: Callable[[], int] | None = None,
        connection: ConnectionMetrics | None = None,
    ) -> None:
        self.name = name
        self.buffer = buffer
        self.connection = connection
        self.records_in = 0
        self.records_out = 0
        self.messages_processed = 0
        self.process_latency_us = 0
        self.last_invocation = 0
        self.exceptions = 0
        self.dropped = 0  # rows dropped by bufferFullPolicy dropOldest/dropNewest (sources only)
        self.last_exception = ""
        self.last_exception_time = 0

    def error(self, message: str, now_ms: int) -> None:
        """Count one exception and remember it as the latest."""
        self.exceptions += 1
        self.last_exception = message
        self.last_exception_time = now_ms

    def snapshot(self) -> dict[str, Any]:
        """``{"<name>_0_<metric>": value}`` in eKuiper's metric order."""
        prefix = f"{self.name}_0_"
        values: list[Any] = [
            self.records_in,
            self.records_out,
            self.messages_processed,
            self.process_latency_us,
            self.buffer() if self.buffer is not None else 0,
            self.last_invocation,
            self.exceptions,
            self.last_exception,
            self.last_exception_time,
        ]
        out = {prefix + key: value for key, value in zip(METRIC_NAMES, values, strict=True)}
        conn = self.connection
        if conn is not None:
            conn_values: list[Any] = [
                conn.status,
                conn.last_connected_time,
                conn.last_disconnected_time,
                conn.last_disconnected_message,
                conn.last_try_time,
            ]
            out.update(
                {prefix + key: value for key, value in zip(CONNECTION_METRIC_NAMES, conn_values, strict=True)}
            )
        if self.name.startswith("source_"):
            out[prefix + "records_dropped_total"] = self.dropped  # Oort extension: bufferFullPolicy drops
        return out

    def __repr__(self) -> str:
        return f"<OpMetrics {self.name} in={self.records_in} out={self.records_out} err={self.exceptions}>"


@final
class RuleMetrics:
    """All nodes of one rule run, in topological order (sources, operators, sinks).

    ``scan_tables``, set by a run that joins scan tables, reads their current rows by FROM/JOIN name (REST
    ``GET /rules/{id}/scantables``).
    """

    __slots__ = ("nodes", "scan_tables")

    def __init__(self) -> None:
        self.nodes: list[OpMetrics] = []
        self.scan_tables: Callable[[], Mapping[str, Sequence[Row]]] | None = None

    def add(self, node: OpMetrics) -> OpMetrics:
        self.nodes.append(node)
        return node

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for node in self.nodes:
            out.update(node.snapshot())
        return out

    def exceptions_total(self) -> int:
        return sum(node.exceptions for node in self.nodes)

    def last_exception(self) -> str:
        latest = max(self.nodes, key=lambda n: n.last_exception_time, default=None)
        return latest.last_exception if latest is not None else ""


@final
class LoopLag:
    """How late Trio runs a timer: a probe sleeps ``interval`` seconds and records by how much it overslept.

    Run by the daemon (``run`` in its nursery); ``last`` and ``worst`` are 0 until then.
    """

    __slots__ = ("interval", "last", "worst")

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.last = 0.0
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            deadline = trio.current_time() + self.interval
            await trio.sleep_until(deadline)
            self.last = max(0.0, trio.current_time() - deadline)
            self.worst = max(self.worst, self.last)
