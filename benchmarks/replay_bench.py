"""Replay throughput (the test-a-rule feature, ``oort replay``), in process, against a hand-written Python loop.

Two workloads over the same recording (100 device ids, 1,000 events per distinct timestamp, 100 ms apart):
- W1: ``SELECT id, temperature FROM s WHERE temperature > 50`` (stateless);
- W2: ``SELECT id, avg(temperature) AS t FROM s GROUP BY id, TUMBLINGWINDOW(ss, 1)`` on event time.

Oort: ``runtime.tools.replay.replay`` reading the recording as a stream (a generator: nothing is held but the
rule's state) on trio's ``MockClock``. Baseline: the same rule written by hand as one Python loop over the
same events. Both fold their emissions into a digest as they come (nothing is kept), and the digests must
be equal on every run.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import trio
import trio.testing

from runtime.tools.replay import replay

T0 = 1_700_000_000_000
PER_TS = 1_000  # events sharing one timestamp
STEP_MS = 100
DDL = {
    "W1": 'CREATE STREAM s (id BIGINT, temperature FLOAT, ts BIGINT) WITH (TYPE="memory", DATASOURCE="s");',
    "W2": (
        "CREATE STREAM s (id BIGINT, temperature FLOAT, ts BIGINT) "
        'WITH (TYPE="memory", DATASOURCE="s", TIMESTAMP="ts");'
    ),
}
RULE = {
    "W1": {"sql": "SELECT id, temperature FROM s WHERE temperature > 50"},
    "W2": {
        "sql": "SELECT id, avg(temperature) AS t FROM s GROUP BY id, TUMBLINGWINDOW(ss, 1)",
        "options": {"isEventTime": True},
    },
}


def events(n: int, seed: int = 7) -> Callable[[], Iterator[dict[str, Any]]]:
    """The recording as a function returning a fresh iterator (the same events every time)."""

    def generate() -> Iterator[dict[str, Any]]:
        rng = random.Random(seed)
        for i in range(n):
            ts = T0 + (i // PER_TS) * STEP_MS
            yield {"ts": ts, "data": {"id": i % 100, "temperature": round(rng.uniform(0, 100), 3), "ts": ts}}

    return generate


class Digest:
    """Emissions folded into a hash as they come (floats rounded to 9 places: summation order may differ in
    the last bit), so comparing two runs keeps no emission in memory."""

    def __init__(self) -> None:
        self.count = 0
        self._hash = hashlib.sha256()

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        self.count += 1
        rounded = [{k: round(v, 9) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
        self._hash.update(orjson.dumps(rounded))

    @property
    def value(self) -> str:
        return f"{self.count}:{self._hash.hexdigest()}"


def run_oort(workload: str, source: Callable[[], Iterator[dict[str, Any]]]) -> tuple[float, Digest]:
    digest = Digest()
    start = time.perf_counter()
    trio.run(
        lambda: replay(DDL[workload], RULE[workload], source, on_emission=digest),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    return time.perf_counter() - start, digest


def run_loop(workload: str, source: Callable[[], Iterator[dict[str, Any]]]) -> tuple[float, Digest]:
    digest = Digest()
    start = time.perf_counter()
    (_w1 if workload == "W1" else _w2)(source(), digest)
    return time.perf_counter() - start, digest


def _w1(stream: Iterator[dict[str, Any]], emit: Callable[[list[dict[str, Any]]], None]) -> None:
    for event in stream:
        row = event["data"]
        t = row.get("temperature")
        if t is not None and t > 50:
            emit([{"id": row.get("id"), "temperature": t}])


def _w2(stream: Iterator[dict[str, Any]], emit: Callable[[list[dict[str, Any]]], None]) -> None:
    # What Oort's event-time tumbling window emits on this recording: window [w, w + 1 s) once the first event
    # two windows later arrives, its groups in order of first appearance; windows still open when the recording
    # ends are not emitted (replay does not wait for later timers).
    windows: dict[int, dict[Any, list[float]]] = {}
    for event in stream:
        row = event["data"]
        window = row["ts"] // 1000
        for done in [w for w in windows if w <= window - 2]:
            emit([{"id": key, "t": s / c} for key, (s, c) in windows.pop(done).items()])
        groups = windows.setdefault(window, {})
        acc = groups.get(row["id"])
        if acc is None:
            groups[row["id"]] = [row["temperature"], 1]
        else:
            acc[0] += row["temperature"]
            acc[1] += 1
