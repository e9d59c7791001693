"""Flow control of the mqtt source against a real Mosquitto: under ``block`` a rule that cannot keep up stops
the reading (QoS 1 acknowledgements wait), so the broker holds the backlog and nothing is lost; under a drop
policy the source keeps reading and counts what the full buffer dropped."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio
import trio.testing

from runtime.engine import Engine
from tests.io.mqtt.broker import publish, running_broker
from tests.io.mqtt.mqtt_support import mqtt_engine, take_rows, wait_connected
from tests.tls_certs import Certs

pytestmark = pytest.mark.slow

COUNT = 300


async def slow_rule(engine: Engine, policy: str) -> None:
    engine.create_stream("stream", 'CREATE STREAM s () WITH (DATASOURCE="load")')
    await engine.create_rule(
        {
            "id": "r",
            "sql": "SELECT n FROM s",
            # The memory sink blocks on the test's unread subscription: the rule cannot keep up.
            "actions": [{"memory": {"topic": "out", "sendSingle": True, "bufferLength": 1}}],
            "options": {"bufferLength": 2, "bufferFullPolicy": policy},
        }
    )


def source_metric(engine: Engine, suffix: str) -> int:
    status = engine.rule_status("r")
    return int(next(v for k, v in status.items() if k.startswith("source_") and k.endswith(suffix)))


async def test_block_leaves_the_backlog_at_the_broker_and_loses_nothing(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(30):
            async with engine.services.memory.subscribe("out", 1) as recv:  # read by nobody for now
                await slow_rule(engine, "block")
                await wait_connected(engine)
                (client,) = engine.services.mqtt._clients.values()
                await publish(broker, "load", [orjson.dumps({"n": n}).decode() for n in range(COUNT)], qos=1)
                # The reader is held by the full rule buffer; it stays held (nothing is read meanwhile).
                while not client.router.delivering:
                    await trio.testing.wait_all_tasks_blocked()
                held = source_metric(engine, "records_in_total")
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                assert client.router.delivering
                assert source_metric(engine, "records_in_total") == held < COUNT
                # Unblocked: every message, in order, none dropped.
                rows = await take_rows(recv, COUNT)
                assert [row["n"] for row in rows] == list(range(COUNT))
                assert source_metric(engine, "records_dropped_total") == 0


async def test_a_drop_policy_keeps_reading_and_counts_the_drops(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(30):
            async with engine.services.memory.subscribe("out", 1) as recv:
                await slow_rule(engine, "dropNewest")
                await wait_connected(engine)
                await publish(broker, "load", [orjson.dumps({"n": n}).decode() for n in range(COUNT)], qos=1)
                while source_metric(engine, "records_dropped_total") == 0:  # the full buffer drops, counted
                    await trio.testing.wait_all_tasks_blocked()
                # Drained: every message is either delivered (in order) or counted as dropped.
                kept: list[int] = []
                while len(kept) + source_metric(engine, "records_dropped_total") < COUNT:
                    kept.extend(row["n"] for row in await take_rows(recv, 1))
                assert len(kept) + source_metric(engine, "records_dropped_total") == COUNT
                assert kept == sorted(kept) and len(set(kept)) == len(kept)
