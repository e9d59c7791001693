"""MQTT connections against a real Mosquitto: TLS, mutual TLS, username/password, the reasons a connection
fails (wrong password, wrong CA, no client certificate) in the rule status, the REST connection test, and a
persistent QoS 1 session surviving ten broker restarts without losing a message."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio

from runtime.engine import Engine
from runtime.errors import EngineError
from runtime.io.memory.bus import Published
from runtime.model import Row
from tests.io.mqtt.broker import PASSWORD, USER, publish, running_broker
from tests.io.mqtt.mqtt_support import mqtt_engine, take_rows, wait_connected
from tests.tls_certs import Certs

pytestmark = pytest.mark.slow


async def rule_reading(engine: Engine, conf_key: str, topic: str = "in") -> None:
    engine.create_stream("stream", f'CREATE STREAM s () WITH (DATASOURCE="{topic}", CONF_KEY="{conf_key}")')
    await engine.create_rule(
        {"id": "r", "sql": "SELECT * FROM s", "actions": [{"memory": {"topic": "out", "sendSingle": True}}]}
    )


def source_metric(engine: Engine, suffix: str) -> object:
    status = engine.rule_status("r")
    return next(v for k, v in status.items() if k.startswith("source_") and k.endswith(suffix))


@pytest.mark.parametrize("listener", ["tls", "mtls", "auth"])
async def test_secured_listeners_deliver(tmp_path: Path, certs: Certs, listener: str) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker:
        groups = {
            "tls": f'[sec]\nserver = "{broker.url("tls")}"\nrootCaPath = "{certs.ca}"\n',
            "mtls": (
                f'[sec]\nserver = "{broker.url("mtls")}"\nrootCaPath = "{certs.ca}"\n'
                f'certificationPath = "{certs.client_cert}"\nprivateKeyPath = "{certs.client_key}"\n'
            ),
            "auth": f'[sec]\nserver = "{broker.url("auth")}"\nusername = "{USER}"\npassword = "{PASSWORD}"\n',
        }[listener]
        async with mqtt_engine(tmp_path, broker, groups) as engine:
            with trio.fail_after(20):
                async with engine.services.memory.subscribe("out", 10) as recv:
                    await rule_reading(engine, "sec")
                    await wait_connected(engine)
                    await publish(broker, "in", ['{"ok": true}'], listener=listener)
                    assert await take_rows(recv, 1) == [{"ok": True}]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong password", "Not authorized"),
        ("wrong CA", "CERTIFICATE_VERIFY_FAILED"),
        ("no client certificate", "CERTIFICATE_REQUIRED"),
    ],
)
async def test_failures_are_reported_with_their_reason(
    tmp_path: Path, certs: Certs, case: str, reason: str
) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker:
        groups = {
            "wrong password": f'[bad]\nserver = "{broker.url("auth")}"\nusername = "{USER}"\npassword = "nope"\n',
            "wrong CA": f'[bad]\nserver = "{broker.url("tls")}"\nrootCaPath = "{certs.other_ca}"\n',
            "no client certificate": f'[bad]\nserver = "{broker.url("mtls")}"\nrootCaPath = "{certs.ca}"\n',
        }[case]
        async with mqtt_engine(tmp_path, broker, groups) as engine:
            with trio.fail_after(20):
                await rule_reading(engine, "bad")
                (client,) = engine.services.mqtt._clients.values()
                await client.wait_status(-1)
                message = source_metric(engine, "connection_last_disconnected_message")
                assert isinstance(message, str) and reason in message
                assert "nope" not in message  # the password is never shown
                assert engine.rule_status("r")["status"] == "running"  # retrying, not failed


async def test_connection_test_over_the_registry(tmp_path: Path, certs: Certs) -> None:
    async with running_broker(tmp_path / "broker", certs) as broker, mqtt_engine(tmp_path, broker) as engine:
        with trio.fail_after(20):
            ok = await engine.registry.test_connection(
                "mqtt",
                engine.services,
                engine.clock,
                {"server": broker.url("auth"), "username": USER, "password": PASSWORD},
            )
            assert ok == f"connected to mqtt broker {broker.url('auth')}"
            with pytest.raises(EngineError, match="no connection within 0.5 s") as caught:
                await engine.registry.test_connection(
                    "mqtt",
                    engine.services,
                    engine.clock,
                    {
                        "server": broker.url("auth"),
                        "username": USER,
                        "password": "nope",
                        "connectTimeout": "500ms",
                    },
                )
            assert "nope" not in str(caught.value)
            assert engine.services.mqtt.client_count == 0  # the test's connections are gone


async def test_persistent_session_survives_ten_broker_restarts(tmp_path: Path, certs: Certs) -> None:
    groups = '[durable]\nclientid = "oort-durable"\nenableClientSession = true\nqos = 1\n'
    # No per-listener settings: with them Mosquitto queues nothing for a session whose listener is not up.
    async with (
        running_broker(tmp_path / "broker", certs, secured=False) as broker,
        mqtt_engine(tmp_path, broker, groups) as engine,
    ):
        with trio.fail_after(60):
            async with engine.services.memory.subscribe("out", 10_000) as recv:
                await rule_reading(engine, "durable", topic="jobs")
                await wait_connected(engine)
                (client,) = engine.services.mqtt._clients.values()
                expected: list[int] = []
                received: list[dict[str, int]] = []
                n = 0
                async with trio.open_nursery() as nursery:
                    for _ in range(10):
                        # A clean stop, so the broker keeps the session: a SIGKILLed Mosquitto loses what it had
                        # not saved yet, the broker's business, not Oort's (the sink test kills it outright).
                        await broker.stop()
                        await client.wait_status(-1)
                        # Up again on a listener Oort does not know: what is published now is published
                        # "while Oort is away", queued by the broker for the persistent session.
                        await broker.start(nursery, side_only=True)
                        batch = list(range(n, n + 5))
                        n += 5
                        await publish(
                            broker, "jobs", [orjson.dumps({"n": i}).decode() for i in batch], listener="side"
                        )
                        expected += batch
                        await broker.stop()  # a clean stop saves the queued messages
                        await broker.start(nursery)
                        await client.wait_status(1)
                        # And while connected, too.
                        await publish(broker, "jobs", [orjson.dumps({"n": n}).decode()])
                        expected.append(n)
                        n += 1
                        await take_rows_until(recv, received, len(expected))
                    assert [row["n"] for row in received] == expected
                    await broker.kill()


async def take_rows_until(recv: trio.MemoryReceiveChannel[Published], rows: list[Row], count: int) -> None:
    while len(rows) < count:
        _, batch = await recv.receive()
        rows.extend(batch)
