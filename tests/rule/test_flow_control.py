"""Flow control through a whole rule: websocket clients -> rule with a stalled sink.

``block`` (default) loses nothing and keeps the rule's buffers bounded (the hub stops reading the socket, TCP pushes
back on the client); ``dropOldest`` never stalls the socket and counts every dropped row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from runtime.config import load_config
from runtime.engine import Engine
from runtime.io.contract import Sink, SinkSpec
from runtime.io.registry import Registry
from runtime.io.websocket.endpoint import READ_BATCH
from runtime.model import Row
from tests.io.websocket.test_data_server import connect

N = 2000
BUFFER = 4
# Rows a stalled block pipeline may hold: BUFFER batches in each of its two channels, plus one batch in the
# hands of the hub, the operator and the sink; no batch is larger than the hub's READ_BATCH (coalescing stops there).
IN_FLIGHT_ROWS = (2 * BUFFER + 3) * READ_BATCH


class _GatedSink:
    """Holds every write until the test opens the gate; records what it got."""

    def __init__(self, gate: trio.Event, got: list[Row]) -> None:
        self._gate, self._got = gate, got

    async def open(self) -> None:
        pass

    async def write(self, data: Row | list[Row]) -> None:
        await self._gate.wait()
        self._got.extend(data if isinstance(data, list) else [data])

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def gated(tmp_path: Path, registry: Registry) -> AsyncIterator[tuple[Engine, trio.Event, list[Row]]]:
    gate, got = trio.Event(), []

    def factory(spec: SinkSpec) -> Sink:
        return _GatedSink(gate, got)

    registry.register_sink("gated", factory)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "oort.toml").write_text('[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = 0\n')
    engine = Engine(load_config(etc), etc_dir=etc, data_dir=tmp_path / "data", registry=registry)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        engine.create_stream("stream", 'CREATE STREAM feed () WITH (TYPE="websocket", DATASOURCE="/in")')
        yield engine, gate, got
        nursery.cancel_scope.cancel()


def _rule(policy: str) -> dict[str, object]:
    return {
        "id": "slow",
        "sql": "SELECT n FROM feed",
        "actions": [{"gated": {"sendSingle": True}}],
        "options": {"bufferLength": BUFFER, "bufferFullPolicy": policy},
    }


async def test_block_loses_nothing_and_stays_bounded(gated: tuple[Engine, trio.Event, list[Row]]) -> None:
    engine, gate, got = gated
    with trio.fail_after(30):
        await engine.create_rule(_rule("block"))
        async with connect(engine.services.data_server.port, "/in") as ws:
            async with trio.open_nursery() as sender:

                async def send_all() -> None:
                    for n in range(N):
                        await ws.send_message(f'{{"n": {n}}}')

                sender.start_soon(send_all)
                await trio.testing.wait_all_tasks_blocked(0.05)  # the pipeline is stalled on the gate
                status = engine.rule_status("slow")
                assert status["source_feed_0_buffer_length"] <= BUFFER
                assert status["sink_gated_0_0_buffer_length"] <= BUFFER
                assert status["source_feed_0_records_in_total"] < N, "the source stopped reading"
                assert status["source_feed_0_records_in_total"] <= IN_FLIGHT_ROWS, (
                    "rows in flight are bounded"
                )
                gate.set()
            while len(got) < N:
                await trio.testing.wait_all_tasks_blocked()
        assert [row["n"] for row in got] == list(range(N))
        assert engine.rule_status("slow")["source_feed_0_records_dropped_total"] == 0


async def test_drop_oldest_never_stalls_and_counts_drops(gated: tuple[Engine, trio.Event, list[Row]]) -> None:
    engine, gate, got = gated
    with trio.fail_after(30):
        await engine.create_rule(_rule("dropOldest"))
        async with connect(engine.services.data_server.port, "/in") as ws:
            for n in range(N):
                await ws.send_message(f'{{"n": {n}}}')
            # Nothing waits on the stalled sink but the operator: the hub reads every frame, dropping as it goes.
            await trio.testing.wait_all_tasks_blocked(0.05)
            gate.set()
            dropped = engine.rule_status("slow")["source_feed_0_records_dropped_total"]
            assert dropped > 0
            while len(got) + dropped < N:
                await trio.testing.wait_all_tasks_blocked()
        numbers = [row["n"] for row in got]
        assert numbers == sorted(numbers) and numbers[-1] == N - 1, "the newest rows survive"
