"""The mqtt source against a real Mosquitto: eKuiper's getting-started stream, QoS, wildcards, meta(topic),
MQTT 5, malformed payloads, shared subscriptions and the connection status."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
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


@pytest.mark.parametrize("version", ["3.1.1", "5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_qos_and_wildcards_deliver_every_message_with_its_topic(
    tmp_path: Path, certs: Certs, version: str, qos: int
) -> None:
    groups = f'[v]\nprotocolVersion = "{version}"\nqos = {qos}\n'
    async with (
        running_broker(tmp_path / "broker", certs) as broker,
        mqtt_engine(tmp_path, broker, groups) as engine,
    ):
        with trio.fail_after(20):
            engine.create_stream(
                "stream", 'CREATE STREAM s () WITH (TYPE="mqtt", DATASOURCE="dev/+/temp", CONF_KEY="v")'
            )
            async with engine.services.memory.subscribe("out", 100) as recv:
                await engine.create_rule(
                    {
                        "id": "r",
                        "sql": "SELECT v, meta(topic) AS topic, meta(qos) AS q FROM s",
                        "actions": [{"memory": {"topic": "out", "sendSingle": True}}],
                    }
                )
                await wait_connected(engine)
                mqtt_version = "mqttv5" if version == "5" else "mqttv311"
                await publish(broker, "dev/a/temp", ['{"v": 1}', '{"v": 2}'], qos=qos, version=mqtt_version)
                await publish(broker, "dev/b/humidity", ['{"v": 99}'], qos=qos)  # not matched
                await publish(broker, "dev/b/temp", ['{"v": 3}'], qos=qos, version=mqtt_version)
                rows = await take_rows(recv, 3)
                assert rows == [
                    {"v": 1, "topic": "dev/a/temp", "q": qos},
                    {"v": 2, "topic": "dev/a/temp", "q": qos},
                    {"v": 3, "topic": "dev/b/temp", "q": qos},
                ]


async def test_malformed_payload_is_counted_and_the_next_ones_flow(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(20):
            engine.create_stream("stream", 'CREATE STREAM s () WITH (DATASOURCE="in/#")')
            async with engine.services.memory.subscribe("out", 100) as recv:
                await engine.create_rule(
                    {
                        "id": "r",
                        "sql": "SELECT * FROM s",
                        "actions": [{"memory": {"topic": "out", "sendSingle": True}}],
                    }
                )
                await wait_connected(engine)
                await publish(broker, "in/x", ['{"a": 1}', "not json {", '[{"a": 2}, {"a": 3}]'])
                assert await take_rows(recv, 3) == [{"a": 1}, {"a": 2}, {"a": 3}]
                status = engine.rule_status("r")
                exceptions = sum(
                    v
                    for k, v in status.items()
                    if k.startswith("source_") and k.endswith("_exceptions_total")
                )
                assert exceptions == 1
                last = next(
                    v for k, v in status.items() if k.startswith("source_") and k.endswith("_last_exception")
                )
                assert "in/x" in last


async def test_mqtt5_user_properties_reach_meta(tmp_path: Path, certs: Certs) -> None:
    groups = '[v5]\nprotocolVersion = "5"\n'
    async with (
        running_broker(tmp_path / "broker", certs) as broker,
        mqtt_engine(tmp_path, broker, groups) as engine,
    ):
        with trio.fail_after(20):
            engine.create_stream("stream", 'CREATE STREAM s () WITH (DATASOURCE="p", CONF_KEY="v5")')
            async with engine.services.memory.subscribe("out", 100) as recv:
                await engine.create_rule(
                    {
                        "id": "r",
                        "sql": "SELECT a, meta(properties) AS p FROM s",
                        "actions": [{"memory": {"topic": "out", "sendSingle": True}}],
                    }
                )
                await wait_connected(engine)
                await trio.run_process(
                    [
                        "mosquitto_pub",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(broker.plain),
                        "-V",
                        "mqttv5",
                        "-t",
                        "p",
                        "-m",
                        '{"a": 1}',
                        "-D",
                        "publish",
                        "user-property",
                        "site",
                        "north",
                    ]
                )
                assert await take_rows(recv, 1) == [{"a": 1, "p": {"site": "north"}}]


async def test_shared_subscription_splits_messages_between_two_rules(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(20):
            engine.create_stream("stream", 'CREATE STREAM s () WITH (DATASOURCE="$share/workers/jobs")')
            async with engine.services.memory.subscribe("out/#", 1000) as recv:
                for rule in ("w1", "w2"):
                    await engine.create_rule(
                        {
                            "id": rule,
                            "sql": "SELECT n FROM s",
                            "actions": [{"memory": {"topic": f"out/{rule}", "sendSingle": True}}],
                        }
                    )
                assert engine.services.mqtt.client_count == 2  # one group member per rule
                await wait_connected(engine)
                await publish(broker, "jobs", [orjson.dumps({"n": n}).decode() for n in range(40)])
                per_rule: dict[str, list[int]] = {"out/w1": [], "out/w2": []}
                while sum(map(len, per_rule.values())) < 40:
                    topic, rows = await recv.receive()
                    per_rule[topic].extend(row["n"] for row in rows)
                # Each message went to exactly one member, and both members got some.
                assert sorted(per_rule["out/w1"] + per_rule["out/w2"]) == list(range(40))
                assert per_rule["out/w1"] and per_rule["out/w2"]


async def test_a_decompression_bomb_is_refused_and_the_next_message_flows(
    tmp_path: Path, certs: Certs
) -> None:
    groups = '[gz]\ndecompression = "gzip"\nmaxMessageSize = 1048576\n'
    async with (
        running_broker(tmp_path / "broker", certs) as broker,
        mqtt_engine(tmp_path, broker, groups) as engine,
    ):
        with trio.fail_after(20):
            engine.create_stream("stream", 'CREATE STREAM s () WITH (DATASOURCE="gz", CONF_KEY="gz")')
            async with engine.services.memory.subscribe("out", 10) as recv:
                await engine.create_rule(
                    {
                        "id": "r",
                        "sql": "SELECT * FROM s",
                        "actions": [{"memory": {"topic": "out", "sendSingle": True}}],
                    }
                )
                await wait_connected(engine)
                bomb = gzip.compress(b'{"a": "' + b"0" * (64 << 20) + b'"}')  # 64 MiB inflated, ~64 KiB sent
                ok = gzip.compress(b'{"a": 1}')
                for payload in (bomb, ok):
                    await trio.run_process(
                        [
                            "mosquitto_pub",
                            "-h",
                            "127.0.0.1",
                            "-p",
                            str(broker.plain),
                            "-t",
                            "gz",
                            "-q",
                            "1",
                            "-s",
                        ],
                        stdin=payload,
                    )
                assert await take_rows(recv, 1) == [{"a": 1}]
                status = engine.rule_status("r")
                last = next(
                    v for k, v in status.items() if k.startswith("source_") and k.endswith("_last_exception")
                )
                assert "decompressed payload exceeds maxMessageSize (1048576 bytes)" in last
