"""One set of endpoint settings per data-server path: a second stream on the path with another conf group (here
one without the first one's token) is refused, naming both, so no start order lets a client skip the token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from tests.daemon_process import Daemon, free_port, start_daemon, wait_for, write_etc
from tests.io.websocket.test_data_server import handshake_status

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-p"


async def _status(daemon: Daemon, rule_id: str) -> dict[str, Any]:
    async with daemon.client() as http:
        status: dict[str, Any] = (await http.get(f"/rules/{rule_id}/status")).json()
    return status


async def _no_token_is_refused(port: int) -> None:
    assert await handshake_status(port, "/p") in (401, 403)
    assert await handshake_status(port, f"/p?token={TOKEN}") == 101


async def test_second_conf_group_on_a_path_is_refused_and_the_token_holds(tmp_path: Path) -> None:
    port = free_port()
    etc = write_etc(
        tmp_path / "etc", extra_toml=f'[source]\nhttpServerIp = "127.0.0.1"\nhttpServerPort = {port}\n'
    )
    (etc / "sources" / "websocket.toml").write_text(f'[default]\n\n[srv]\ntoken = "{TOKEN}"\n')
    data = tmp_path / "data"
    rules = [("zz", "a", "srv"), ("aa", "b", "")]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, data)
            async with daemon.client() as http:
                for rule_id, stream, key in rules:
                    conf = f', CONF_KEY="{key}"' if key else ""
                    sql = f'CREATE STREAM {stream} () WITH (TYPE="websocket", DATASOURCE="/p"{conf})'
                    assert (await http.post("/streams", json={"sql": sql})).status_code == 201
                    rule = {"id": rule_id, "sql": f"SELECT * FROM {stream}", "actions": [{"nop": {}}]}
                    assert (await http.post("/rules", json=rule)).status_code == 201
            status = await _status(daemon, "aa")
            assert status["status"] != "running"
            message = status.get("message", "")
            assert "websocket path /p is served by rule zz (stream a) with other settings (token)" in message
            assert "rule aa (stream b)" in message and TOKEN not in message
            assert (await _status(daemon, "zz"))["status"] == "running"
            await _no_token_is_refused(port)
            await daemon.terminate()

            # After a restart both rules start again, in whatever order: one holds /p, the other is refused.
            daemon = await start_daemon(nursery, etc, data)

            async def settled() -> bool:
                states = [(await _status(daemon, r))["status"] for r, _, _ in rules]
                return sorted(states) != sorted(["running", "running"]) and "running" in states

            await wait_for(settled)
            if (await _status(daemon, "zz"))["status"] == "running":
                await _no_token_is_refused(port)
            else:
                assert "rule aa (stream b)" in (await _status(daemon, "zz")).get("message", "")
            await daemon.terminate()


async def test_an_open_path_on_a_public_bind_is_logged(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """Binding every interface is allowed (it is a deliberate setting), but each path without a token says so."""
    from runtime.config import SourceConf
    from runtime.io.services import Services
    from runtime.io.websocket.conf import WsConf
    from tests.io.websocket.test_data_server import rule_on

    services = Services(source_conf=SourceConf(http_server_ip="0.0.0.0", http_server_port=0))
    services.attach(nursery)
    hub = services.data_server
    with trio.fail_after(10):
        async with rule_on(hub, "/open"), rule_on(hub, "/closed", conf=WsConf(token=TOKEN)):
            assert await handshake_status(hub.port, "/open") == 101
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "websocket path /open takes data from anyone who can reach 0.0.0.0: its conf group sets no token"
    ]
    assert SourceConf().http_server_ip == "127.0.0.1"  # the default serves this machine only


async def test_a_client_that_stops_answering_pings_is_closed_as_dead(
    nursery: trio.Nursery,
) -> None:
    """A raw wsproto client answers three pings (and stays), then goes silent: closed with 1011, slot freed."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Ping, Request

    from runtime.config import SourceConf
    from runtime.io.services import Services
    from runtime.io.websocket.conf import WsConf
    from tests.io.websocket.test_data_server import rule_on

    services = Services(source_conf=SourceConf(http_server_ip="127.0.0.1", http_server_port=0))
    services.attach(nursery)
    hub = services.data_server
    with trio.fail_after(20):
        async with rule_on(hub, "/p", conf=WsConf(ping_interval=0.2)) as (_, ctx):
            stream = await trio.open_tcp_stream("127.0.0.1", hub.port)
            async with stream:
                ws = WSConnection(ConnectionType.CLIENT)
                await stream.send_all(ws.send(Request(host="127.0.0.1", target="/p")))
                answered, closed = 0, None
                while closed is None:
                    data = await stream.receive_some()
                    ws.receive_data(data or None)
                    for event in ws.events():
                        if isinstance(event, AcceptConnection):
                            continue
                        if isinstance(event, Ping) and answered < 3:
                            await stream.send_all(ws.send(event.response()))
                            answered += 1
                        elif isinstance(event, CloseConnection):
                            closed = event.code
                    if not data:
                        break
            assert answered == 3  # a live client is kept through every ping it answers
            assert closed == 1011
            assert hub.counts()["connections"] == 0
            assert ctx.connection.last_disconnected_message == "no answer to ping (1011)"
