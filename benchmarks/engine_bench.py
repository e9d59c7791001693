"""The rule runtime in process: W1 and W2 (``replay_bench``'s workloads) with events arriving in 1,000-event
batches from a source that mimics a memory topic, against the same hand-written loop.

This is the engine alone: the real planner and ``run_rule`` (operator task, inline sink), no wire, no clock
jumps. Emissions are folded into a digest that must equal the loop's on every run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

from benchmarks.replay_bench import RULE, Digest
from runtime.clock import Clock
from runtime.config import RuleOptions
from runtime.io.contract import SourceSpec
from runtime.io.registry import Registry
from runtime.io.services import Services
from runtime.metrics import RuleMetrics
from runtime.model import Event, Outbox, Row
from runtime.plan.catalog import Catalog
from runtime.plan.planner import plan_rule
from runtime.plan.ruledef import parse_rule
from runtime.rule.loop import RuleEnv
from runtime.rule.pipeline import run_rule
from runtime.sql.ast import StreamDef
from runtime.sql.parser import parse_ddl
from runtime.tools.replay import CollectorSink

BATCH = 1_000
DDL = {
    "W1": 'CREATE STREAM s (id BIGINT, temperature FLOAT, ts BIGINT) WITH (TYPE="bench", DATASOURCE="s")',
    "W2": (
        "CREATE STREAM s (id BIGINT, temperature FLOAT, ts BIGINT) "
        'WITH (TYPE="bench", DATASOURCE="s", TIMESTAMP="ts")'
    ),
}
META: Row = {"topic": "s"}


class _BatchSource:
    """Sends the recorded rows as events in batches of ``BATCH``, as fast as the rule takes them."""

    def __init__(self, spec: SourceSpec, events: Callable[[], Iterator[dict[str, Any]]]) -> None:
        self._events = events

    async def run(
        self, send: Outbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        batch: list[Any] = []
        for event in self._events():
            batch.append(Event(event["data"], event["ts"], META))
            if len(batch) == BATCH:
                await send.send(batch)
                batch = []
        if batch:
            await send.send(batch)


def run_engine(workload: str, source: Callable[[], Iterator[dict[str, Any]]]) -> tuple[float, Digest]:
    digest = Digest()
    registry = Registry()
    registry.register_source("bench", lambda spec: _BatchSource(spec, source))
    registry.register_sink("digest", lambda spec: CollectorSink(spec, digest))  # written inline, as nop is
    with tempfile.TemporaryDirectory(prefix="oort-engine-bench-") as tmp:
        catalog = Catalog(Path(tmp) / "data")
        stmt = parse_ddl(DDL[workload])
        assert isinstance(stmt, StreamDef)
        catalog.put_stream(stmt)
        raw = {**RULE[workload], "id": workload.lower(), "actions": [{"digest": {}}]}
        plan = plan_rule(parse_rule(raw, RuleOptions()), catalog, registry)
        etc = Path(tmp) / "etc"

        async def run() -> None:
            env = RuleEnv(clock=Clock(), services=Services(), registry=registry, etc_dir=etc)
            await run_rule(plan, env, RuleMetrics())

        start = time.perf_counter()
        trio.run(run)
        return time.perf_counter() - start, digest
