"""Process and runtime metrics for ``GET /metrics``: what prometheus_client reports of any Python process (CPU
seconds, resident and virtual memory, open and maximum file descriptors, start time, garbage collections,
the interpreter), plus Trio's own numbers: living tasks and how late the scheduler runs a timer (event-loop lag,
from the engine's ``LoopLag`` monitor)."""

from __future__ import annotations

from collections.abc import Iterator

import trio
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from runtime.engine import Engine


class _TrioCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            tasks = trio.lowlevel.current_statistics().tasks_living
        except RuntimeError:  # not inside the daemon's Trio run (a scrape cannot happen then)
            return
        yield GaugeMetricFamily("oort_trio_tasks", "Trio tasks alive in the daemon.", value=tasks)
        lag = self._engine.loop_lag
        yield GaugeMetricFamily(
            "oort_event_loop_lag_seconds",
            "How late the Trio scheduler ran the last lag probe's timer (seconds); high values mean the event "
            "loop is busy and every rule and request waits.",
            value=lag.last,
        )
        yield GaugeMetricFamily(
            "oort_event_loop_lag_max_seconds",
            "The largest event-loop lag seen since the daemon started (seconds).",
            value=lag.worst,
        )


def process_metrics_text(engine: Engine) -> bytes:
    """The process, GC, platform and Trio metrics in the Prometheus text format.

    prometheus_client's default registry holds its process, GC and platform collectors (registered once, at
    import: the GC one hooks ``gc.callbacks``); the Trio numbers come from this engine.
    """
    trio_registry = CollectorRegistry(auto_describe=False)
    trio_registry.register(_TrioCollector(engine))
    return generate_latest(REGISTRY) + generate_latest(trio_registry)
