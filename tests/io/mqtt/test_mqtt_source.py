"""The mqtt source against a real Mosquitto: eKuiper's getting-started stream, QoS, wildcards, meta(topic),
MQTT 5, malformed payloads, shared subscriptions and the connection status."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.io.mqtt.broker import publish, running_broker
from tests.io.mqtt.mqtt_support import mqtt_engine, take_rows, wait_connected
from tests.tls_certs import Certs

pytestmark = pytest.mark.slow


async def test_getting_started_stream_without_type_reads_mqtt(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(20):
            # eKuiper's getting-started stream, verbatim: no TYPE, so it is MQTT.
            engine.create_stream(
                "stream",
                'CREATE STREAM demo (temperature float, humidity bigint) WITH (FORMAT="JSON", DATASOURCE="demo")',
            )
            async with engine.services.memory.subscribe("out", 100) as recv:
                await engine.create_rule(
                    {
                        "id": "r1",
                        "sql": "SELECT temperature, humidity, meta(topic) AS t FROM demo WHERE temperature > 30",
                        "actions": [{"memory": {"topic": "out", "sendSingle": True}}],
                    }
                )
                await wait_connected(engine)
                await publish(
                    broker,
                    "demo",
                    ['{"temperature": 25, "humidity": 10}', '{"temperature": 35.5, "humidity": 20}'],
                )
                rows = await take_rows(recv, 1)
                assert rows == [{"temperature": 35.5, "humidity": 20, "t": "demo"}]
