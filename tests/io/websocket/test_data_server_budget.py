"""The data server's inbound byte budget with many connections: idle ones hold none of it, so a message that
needs many reads still gets through, while connections assembling messages share what there is."""

from __future__ import annotations

import attrs
import orjson
import pytest
import trio

from runtime.io.services import Services
from tests.io.websocket.test_data_server import LOCAL, raw_ws, rows, rule_on

MIB = 1024 * 1024


async def test_idle_connections_do_not_use_up_the_budget(nursery: trio.Nursery) -> None:
    from wsproto.events import TextMessage

    services = Services(source_conf=attrs.evolve(LOCAL, max_inbound_bytes=MIB))
    services.attach(nursery)
    hub = services.data_server
    big = orjson.dumps({"blob": "x" * 300_000}).decode()  # several socket reads
    with trio.fail_after(20):
        async with rule_on(hub, "/a") as (recv, _):
            async with trio.open_nursery() as idle:
                for _ in range(64):  # 64 idle connections x 64 KiB would be 4x the budget
                    ready = trio.Event()

                    async def hold(ready: trio.Event = ready) -> None:
                        async with raw_ws(hub.port, "/a"):
                            ready.set()
                            await trio.sleep_forever()

                    idle.start_soon(hold)
                    await ready.wait()
                assert hub.budget.used == 0
                async with raw_ws(hub.port, "/a") as (stream, ws):
                    await stream.send_all(ws.send(TextMessage(data=big)))
                    [row] = rows(await recv.receive())
                assert row == {"blob": "x" * 300_000}
                idle.cancel_scope.cancel()
    assert hub.budget.used == 0


async def test_a_trickled_message_is_dropped_at_the_message_deadline(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.io.websocket import wire
    from runtime.model import ErrorItem

    monkeypatch.setattr(wire, "MESSAGE_DEADLINE", 0.5)  # the default is minutes; the rule is the same
    services = Services(source_conf=LOCAL)
    services.attach(nursery)
    hub = services.data_server
    with trio.fail_after(10):
        async with rule_on(hub, "/a") as (recv, _), raw_ws(hub.port, "/a") as (stream, _ws):
            # A text frame of 1,000 bytes (masked with key 0, so the payload goes as it is), sent a byte at a
            # time, each well within PARTIAL_IDLE of the last: only the whole-message deadline stops it.
            await stream.send_all(bytes((0x81, 0x80 | 126)) + (1000).to_bytes(2, "big") + b"\0\0\0\0")
            started = trio.current_time()
            with trio.move_on_after(5):
                while True:
                    try:
                        await stream.send_all(b"x")
                    except trio.BrokenResourceError:
                        break
                    await trio.sleep(0.05)  # the attacker's pace
            [error] = await recv.receive()
            took = trio.current_time() - started
    assert isinstance(error, ErrorItem) and "took more than 0.5 s to arrive (1008)" in error.message
    assert took < 3
