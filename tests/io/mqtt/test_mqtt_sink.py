"""The mqtt sink against a real Mosquitto, checked with mosquitto_sub: QoS, MQTT 5 user properties,
retained messages, compression, shared connections and the connection status while the broker is away."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime.engine import Engine
from runtime.errors import EngineError
from tests.io.mqtt.broker import Broker, publish, running_broker, subscribe
from tests.io.mqtt.mqtt_support import mqtt_engine, take_rows, wait_connected
from tests.tls_certs import Certs

pytestmark = pytest.mark.slow


async def sink_rule(
    engine: Engine, rule_id: str = "r", sql: str = "SELECT a * 10 AS b FROM src", **props: Any
) -> None:
    if "src" not in engine.catalog.streams["stream"]:
        engine.create_stream("stream", 'CREATE STREAM src () WITH (TYPE="memory", DATASOURCE="in")')
    await engine.create_rule(
        {"id": rule_id, "sql": sql, "actions": [{"mqtt": {"sendSingle": True, **props}}]}
    )


@pytest.mark.parametrize("version", ["3.1.1", "5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_rule_publishes_each_row_to_the_broker(
    tmp_path: Path, certs: Certs, version: str, qos: int
) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(20):
            async with subscribe(broker, "result/#", qos=qos) as results:
                await sink_rule(
                    engine, server=broker.url(), topic="result/r", qos=qos, protocolVersion=version
                )
                await wait_connected(engine)
                await engine.publish("in", [{"a": 1}, {"a": 2}])
                await engine.publish("in", [{"a": 3}])
                got = [await results.receive() for _ in range(3)]
                assert got == [("result/r", '{"b":10}'), ("result/r", '{"b":20}'), ("result/r", '{"b":30}')]
                status = engine.rule_status("r")
                assert (
                    next(
                        v
                        for k, v in status.items()
                        if k.startswith("sink_") and k.endswith("records_out_total")
                    )
                    == 3
                )


async def sent(engine: Engine, count: int, rule_id: str = "r") -> None:
    """Until the rule's sink counted ``count`` messages as written (acknowledged by the broker for QoS 1/2)."""
    while not any(
        k.startswith("sink_") and k.endswith("records_out_total") and v >= count
        for k, v in engine.rule_status(rule_id).items()
    ):
        await trio.testing.wait_all_tasks_blocked()


async def retained(broker: Broker, topic: str, output_format: str, version: str = "mqttv311") -> str:
    """What ``mosquitto_sub -C 1 -F <format>`` prints for the retained message of ``topic``."""
    args = [
        "mosquitto_sub",
        "-h",
        "127.0.0.1",
        "-p",
        str(broker.plain),
        "-V",
        version,
        "-t",
        topic,
        "-C",
        "1",
    ]
    done = await trio.run_process([*args, "-F", output_format], capture_stdout=True)
    return done.stdout.decode().strip()


async def test_retained_message_reaches_a_later_subscriber(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(20):
            await sink_rule(engine, server=broker.url(), topic="state/x", qos=1, retained=True)
            await wait_connected(engine)
            await engine.publish("in", [{"a": 7}])
            await sent(engine, 1)
            assert await retained(broker, "state/x", "%t %r %p") == 'state/x 1 {"b":70}'


async def test_mqtt5_user_properties_and_compression(tmp_path: Path, certs: Certs) -> None:
    groups = '[unzip]\ndecompression = "zlib"\n'
    async with (
        running_broker(tmp_path / "broker", certs) as broker,
        mqtt_engine(tmp_path, broker, groups) as engine,
    ):
        with trio.fail_after(20):
            props = {"protocolVersion": "5", "retained": True, "qos": 1, "properties": {"site": "north"}}
            await sink_rule(engine, server=broker.url(), topic="z", compression="zlib", **props)
            await wait_connected(engine)
            await engine.publish("in", [{"a": 1}])
            await sent(engine, 1)
            shown = await retained(broker, "z", "%P|%x", version="mqttv5")
            user_properties, _, hex_payload = shown.partition("|")
            assert user_properties == "site:north"
            assert zlib.decompress(bytes.fromhex(hex_payload)) == b'{"b":10}'
            # An Oort source with decompression = "zlib" reads it back.
            engine.create_stream("stream", 'CREATE STREAM z () WITH (DATASOURCE="z", CONF_KEY="unzip")')
            async with engine.services.memory.subscribe("back", 10) as recv:
                await engine.create_rule(
                    {"id": "back", "sql": "SELECT * FROM z", "actions": [{"memory": {"topic": "back"}}]}
                )
                assert await take_rows(recv, 1) == [{"b": 10}]


async def test_sink_uses_a_conf_group_and_shares_the_sources_connection(tmp_path: Path, certs: Certs) -> None:
    groups = "[shared]\nqos = 2\n"
    async with (
        running_broker(tmp_path / "broker", certs) as broker,
        mqtt_engine(tmp_path, broker, groups) as engine,
    ):
        with trio.fail_after(20):
            engine.create_stream("stream", 'CREATE STREAM s () WITH (DATASOURCE="in", CONF_KEY="shared")')
            async with subscribe(broker, "echo") as results:
                await engine.create_rule(
                    {
                        "id": "echo",
                        "sql": "SELECT a FROM s",
                        "actions": [{"mqtt": {"confKey": "shared", "topic": "echo", "sendSingle": True}}],
                    }
                )
                assert (
                    engine.services.mqtt.client_count == 1
                )  # source and sink: same settings, one connection
                await wait_connected(engine)
                await publish(broker, "in", ['{"a": 1}'])
                assert await results.receive() == ("echo", '{"a":1}')
            await engine.stop_rule("echo")
            assert engine.services.mqtt.client_count == 0


async def test_sink_reports_a_missing_broker_and_recovers(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(30):
            await sink_rule(
                engine,
                server=broker.url(),
                topic="t",
                qos=1,
                reconnectMinDelay="50ms",
                reconnectMaxDelay="200ms",
            )
            await wait_connected(engine)
            (client,) = engine.services.mqtt._clients.values()
            await broker.kill()
            await client.wait_status(-1)
            await engine.publish("in", [{"a": 1}])  # fails: counted, the rule goes on
            while not _sink_metric(engine, "exceptions_total"):
                await trio.testing.wait_all_tasks_blocked()
            assert "not connected" in _sink_metric(engine, "last_exception")
            assert engine.rule_status("r")["status"] == "running"
            assert _sink_metric(engine, "connection_status") == -1
            assert "Connection refused" in _sink_metric(engine, "connection_last_disconnected_message")
            async with trio.open_nursery() as nursery:
                await broker.start(nursery)
                await client.wait_status(1)
                async with subscribe(broker, "t") as results:
                    await engine.publish("in", [{"a": 2}])
                    assert await results.receive() == ("t", '{"b":20}')
                await broker.kill()


def _sink_metric(engine: Engine, suffix: str) -> Any:
    status = engine.rule_status("r")
    return next(v for k, v in status.items() if k.startswith("sink_") and k.endswith(suffix))


async def test_bad_sink_properties_are_listed_when_the_rule_is_created(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with pytest.raises(EngineError) as caught:
            await sink_rule(engine, server="tcp://127.0.0.1:1", topic="a/#", qos=3, retaind=True)
        message = str(caught.value)
        assert "topic: a sink topic must not contain the wildcards" in message
        assert "qos: expected 0, 1 or 2, got 3" in message
        assert "retaind: unknown key; did you mean 'retained'?" in message


async def test_topic_template_and_data_template(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(20):
            async with subscribe(broker, "devices/#") as results:
                await sink_rule(
                    engine,
                    sql="SELECT id, a FROM src",
                    server=broker.url(),
                    topic="devices/{{.id}}/alarm",
                    dataTemplate='{"device": "{{.id}}", "level": {{.a}}}',
                )
                await wait_connected(engine)
                await engine.publish("in", [{"id": "d1", "a": 3}, {"id": "", "a": 4}, {"id": "d2", "a": 5}])
                assert await results.receive() == ("devices/d1/alarm", '{"device": "d1", "level": 3}')
                # The empty id renders an empty level ("devices//alarm" is a valid topic): it is published too.
                assert await results.receive() == ("devices//alarm", '{"device": "", "level": 4}')
                assert await results.receive() == ("devices/d2/alarm", '{"device": "d2", "level": 5}')
            await engine.publish("in", [{"id": "+", "a": 6}])  # would be a wildcard: dropped and counted
            while not _sink_metric(engine, "exceptions_total"):
                await trio.testing.wait_all_tasks_blocked()
            assert "the topic template rendered 'devices/+/alarm'" in _sink_metric(engine, "last_exception")
