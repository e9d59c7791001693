"""HTTP push on the global data server: routing, keep-alive, auth, limits, decoding, fan-out, flow control and TLS,
over real sockets (raw h11 clients and httpx)."""

from __future__ import annotations

import ssl

import httpx
import pytest
import trio
import trio.testing

from runtime.config import SourceConf, TlsConf
from runtime.errors import SourceError
from runtime.io.httppush.conf import PushConf
from runtime.io.services import Services
from runtime.io.websocket.conf import WsConf
from runtime.metrics import OpMetrics
from runtime.model import Batch, ErrorItem, Event
from runtime.rule.pipeline import DroppingOutbox
from tests.io.httppush.push_client import RawHttp, push_rule
from tests.io.websocket.test_data_server import (
    LOCAL,
    connect,
    json_decoder,
    make_ctx,
    refused,
    registrant,
    rows,
    rule_on,
)
from tests.tls_certs import Certs

TOKEN = "pUsh-s3cret"


@pytest.fixture
def services(nursery: trio.Nursery) -> Services:
    s = Services(source_conf=LOCAL)
    s.attach(nursery)
    return s


async def test_port_is_bound_only_while_a_push_or_websocket_server_rule_runs(services: Services) -> None:
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/in") as recv:
            port = hub.port
            async with rule_on(hub, "/ws") as (ws_recv, _):
                async with httpx.AsyncClient() as http:
                    answer = await http.post(f"http://127.0.0.1:{port}/in", content=b'{"a": 1}')
                assert (answer.status_code, answer.text) == (200, "ok")
                assert rows(await recv.receive()) == [{"a": 1}]
                async with connect(port, "/ws") as ws:  # websockets on the same port, same server
                    await ws.send_message('{"w": 1}')
                    assert rows(await ws_recv.receive()) == [{"w": 1}]
            assert hub.running and not await refused(port)  # the push rule still holds it
        assert not hub.running and await refused(port)
        assert hub.push_routes.counts() == {"paths": 0, "pushers": 0}
        async with push_rule(hub, "/in"):
            assert hub.generation == 2 and not await refused(hub.port)
        assert hub.counts()["refs"] == 0


async def test_one_connection_carries_many_requests_and_errors_keep_it(services: Services) -> None:
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/in") as recv, RawHttp.open(hub.port) as client:
            assert (await client.request("POST", "/in", b'{"n": 1}'))[0] == 200
            assert (await client.request("POST", "/in", b'[{"n": 2}, {"n": 3}]'))[0] == 200
            status, headers, body = await client.request("GET", "/in")
            assert (status, headers["allow"], body) == (405, "POST", b"/in takes POST")
            status, _, body = await client.request("POST", "/in", b'{"n": ')
            assert status == 400 and body.startswith(b"cannot decode the body: invalid JSON: ")
            assert (await client.request("POST", "/in", b'{"n": 4}'))[0] == 200
            assert not client.closed_by_server  # five answers on one TCP connection
            got = [await recv.receive() for _ in range(4)]
        assert rows(got[0]) + rows(got[1]) == [{"n": 1}, {"n": 2}, {"n": 3}]
        [error] = got[2]
        assert isinstance(error, ErrorItem) and error.message.startswith("httppush /in: invalid JSON: ")
        assert rows(got[3]) == [{"n": 4}]
        async with push_rule(hub, "/in"), RawHttp.open(hub.port) as stray:
            status, _, body = await stray.request("POST", "/nobody", b'{"n": 0}')
            assert (status, body) == (404, b"no rule serves /nobody")
            assert stray.closed_by_server  # a connection to a path nobody serves is not kept
        assert hub.budget.used == 0


async def test_pipelined_requests_are_answered_in_order(services: Services) -> None:
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/in") as recv, RawHttp.open(hub.port) as client:
            wire = b"".join(
                b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n" + b'{"p": %d}' % n
                for n in range(3)
            )
            await client.stream.send_all(wire)
            reply = b""
            while reply.count(b"\r\n\r\nok") < 3:
                reply += await client.stream.receive_some(65536)
            assert reply.count(b"HTTP/1.1 200 OK\r\n") == 3
            assert [rows(await recv.receive()) for _ in range(3)] == [[{"p": n}] for n in range(3)]


async def test_token_missing_is_401_wrong_is_403_and_never_reaches_a_rule(services: Services) -> None:
    hub = services.data_server
    conf = PushConf(token=TOKEN)
    with trio.fail_after(10):
        async with push_rule(hub, "/in", conf=conf) as recv, RawHttp.open(hub.port) as client:
            status, headers, body = await client.request("POST", "/in", b'{"x": 0}')
            assert (status, headers["www-authenticate"]) == (401, "Bearer")
            assert TOKEN.encode() not in body
            status, _, body = await client.request(
                "POST", "/in", b'{"x": 0}', (("authorization", "Bearer nope"),)
            )
            assert (status, body) == (403, b"wrong token")
            assert (await client.request("POST", "/in?token=nope", b'{"x": 0}'))[0] == 403
            bearer = (("authorization", f"Bearer {TOKEN}"), ("x-device", "d1"), ("cookie", "c=1"))
            assert (await client.request("POST", "/in?site=a", b'{"x": 1}', bearer))[0] == 200
            assert (await client.request("POST", f"/in?token={TOKEN}&site=b", b'{"x": 2}'))[0] == 200
            assert not client.closed_by_server  # refused requests with small bodies keep the connection
            first, second = await recv.receive(), await recv.receive()
        assert rows(first) == [{"x": 1}] and rows(second) == [{"x": 2}]
        assert isinstance(first[0], Event) and isinstance(second[0], Event)
        meta = first[0].meta
        assert meta is not None
        assert meta["method"] == "POST" and meta["path"] == "/in" and meta["query"] == "site=a"
        assert meta["remoteAddr"].startswith("127.0.0.1:")
        assert meta["headers"]["x-device"] == "d1"
        assert "authorization" not in meta["headers"] and "cookie" not in meta["headers"]
        assert second[0].meta is not None and second[0].meta["query"] == "token=******&site=b"
        assert TOKEN not in repr(first) + repr(second)


async def test_allowed_origins(services: Services) -> None:
    hub = services.data_server
    conf = PushConf(allowed_origins=("https://ok.example",))
    with trio.fail_after(10):
        async with push_rule(hub, "/in", conf=conf) as recv, RawHttp.open(hub.port) as client:
            assert (await client.request("POST", "/in", b"{}", (("origin", "https://evil.example"),)))[
                0
            ] == 403
            assert (await client.request("POST", "/in", b"{}"))[0] == 403  # no Origin: not a listed one
            assert (await client.request("POST", "/in", b'{"o": 1}', (("origin", "https://ok.example"),)))[
                0
            ] == 200
            assert rows(await recv.receive()) == [{"o": 1}]


async def test_bodies_over_the_cap_get_413_before_and_while_reading(services: Services) -> None:
    hub = services.data_server
    conf = PushConf(max_message_size=1000)
    exact = b'{"b": "' + b"x" * (1000 - 9) + b'"}'
    assert len(exact) == 1000
    with trio.fail_after(20):
        async with push_rule(hub, "/in", conf=conf) as recv:
            async with httpx.AsyncClient() as http:
                url = f"http://127.0.0.1:{hub.port}/in"
                big = await http.post(url, content=b"x" * 5_000_000)  # Content-Length checked first
                assert (big.status_code, big.text) == (
                    413,
                    "request body larger than maxMessageSize (1000 bytes)",
                )

                async def chunks() -> trio.abc.AsyncIterator[
                    bytes
                ]:  # no Content-Length: counted while reading
                    for _ in range(100):
                        yield b"y" * 600

                streamed = await http.post(url, content=chunks())
                assert streamed.status_code == 413
                fits = await http.post(url, content=exact)
                assert fits.status_code == 200
            assert rows(await recv.receive()) == [{"b": "x" * 991}]
        assert hub.budget.used == 0


async def test_a_client_waiting_for_100_continue_gets_it(services: Services) -> None:
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/in") as recv, RawHttp.open(hub.port) as client:
            await client.stream.send_all(
                b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nExpect: 100-continue\r\n\r\n"
            )
            assert await client.stream.receive_some(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
            await client.stream.send_all(b'{"c": 1}')
            reply = b""
            while not reply.endswith(b"ok"):
                reply += await client.stream.receive_some(65536)
            assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
            assert rows(await recv.receive()) == [{"c": 1}]


async def test_malformed_and_oversized_heads_are_answered_and_closed(services: Services) -> None:
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/in"):
            for request, status, text in (
                (b"NOT HTTP AT ALL\r\n\r\n", b"400", b"malformed request: illegal request line"),
                (
                    b"POST /in HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
                    b"431",
                    b"too large",
                ),
                (
                    b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nContent-Length: 9\r\n\r\n",
                    b"400",
                    b"malformed request: conflicting Content-Length headers",
                ),
                (  # the bad line is not quoted back: it may hold a credential
                    b"POST /in HTTP/1.1\r\nHost: x\r\nAuthorization Bearer " + TOKEN.encode() + b"\r\n\r\n",
                    b"400",
                    b"malformed request: illegal header line",
                ),
            ):
                async with await trio.open_tcp_stream("127.0.0.1", hub.port) as stream:
                    await stream.send_all(request)
                    reply = b""
                    while chunk := await stream.receive_some(65536):
                        reply += chunk
                assert reply.split()[1] == status and b"connection: close" in reply
                assert reply.endswith(text) and TOKEN.encode() not in reply
            assert hub.running


async def test_every_rule_on_a_path_gets_the_rows_decoded_once_per_stream(services: Services) -> None:
    hub = services.data_server
    calls_a: list[int] = []
    calls_b: list[int] = []
    with trio.fail_after(10):
        async with (
            push_rule(hub, "/in", "a", decoder=json_decoder(calls_a), rule="r1") as r1,
            push_rule(hub, "/in", "a", decoder=json_decoder(calls_a), rule="r2") as r2,
            push_rule(hub, "/in", "b", decoder=json_decoder(calls_b), rule="r3") as r3,
            push_rule(hub, "/in", "c", method="PUT", rule="r4") as r4,
        ):
            async with httpx.AsyncClient() as http:
                url = f"http://127.0.0.1:{hub.port}/in"
                assert (await http.post(url, content=b'[{"k": 1}, {"k": 2}]')).status_code == 200
                assert (await http.put(url, content=b'{"k": 3}')).status_code == 200
                refused_get = await http.get(url)
                assert (refused_get.status_code, refused_get.headers["allow"]) == (405, "POST, PUT")
            posted = [rows(await r.receive()) for r in (r1, r2, r3)]
            assert posted == [[{"k": 1}, {"k": 2}]] * 3
            assert rows(await r4.receive()) == [{"k": 3}]
            for r in (r1, r2, r3):
                with pytest.raises(trio.WouldBlock):
                    r.receive_nowait()  # the PUT went to r4 only
        assert calls_a == [1] and calls_b == [1]
        assert hub.push_routes.counts() == {"paths": 0, "pushers": 0}


async def test_a_second_conf_group_on_a_path_is_refused(services: Services) -> None:
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/in", "a", conf=PushConf(token=TOKEN), rule="r1"):
            with pytest.raises(SourceError) as info:
                async with push_rule(hub, "/in", "b", rule="r2"):
                    pass
            message = info.value.message
            assert "httppush path /in is served by rule r1 (stream a) with other settings (token)" in message
            assert "rule r2 (stream b)" in message and TOKEN not in message
            async with push_rule(hub, "/in", "b", method="PUT", conf=PushConf(method="PUT", token=TOKEN)):
                pass  # the same settings with another method share the path
        assert not hub.running


async def test_block_waits_for_room_before_answering(services: Services) -> None:
    """Under ``block`` (the outbox is the rule's channel) a request is answered only once its rows are in."""
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/in", buffer=1) as recv, httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{hub.port}/in"
            assert (await http.post(url, content=b'{"n": 1}')).status_code == 200  # fills the buffer
            answers: list[int] = []

            async def post() -> None:
                answers.append((await http.post(url, content=b'{"n": 2}')).status_code)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(post)
                endpoint = hub.push_routes.get("/in")
                assert endpoint is not None
                while not endpoint.pushers[0].pending:  # the request reached the rule's full buffer
                    await trio.testing.wait_all_tasks_blocked()
                assert answers == []  # still waiting: the rule took nothing yet
                assert hub.budget.used > 0  # the waiting body holds its bytes of the budget
                assert rows(await recv.receive()) == [{"n": 1}]
            assert answers == [200]
            assert rows(await recv.receive()) == [{"n": 2}]
        assert hub.budget.used == 0


async def test_a_stopping_rule_lets_its_waiting_request_go(services: Services) -> None:
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/other"), httpx.AsyncClient() as http:  # keeps the server up
            answers: list[httpx.Response] = []
            stop = trio.Event()
            url = f"http://127.0.0.1:{hub.port}/in"

            async def rule(task_status: trio.TaskStatus[None]) -> None:
                async with push_rule(hub, "/in", buffer=1):
                    task_status.started()
                    await stop.wait()

            async def post() -> None:
                answers.append(await http.post(url, content=b'{"n": 2}'))

            async with trio.open_nursery() as nursery:
                await nursery.start(rule)
                assert (await http.post(url, content=b'{"n": 1}')).status_code == 200  # fills the buffer
                nursery.start_soon(post)
                endpoint = hub.push_routes.get("/in")
                assert endpoint is not None
                while not endpoint.pushers[0].pending:
                    await trio.testing.wait_all_tasks_blocked()
                stop.set()  # the rule stops: its waiting request is answered without it
            [answer] = answers
            assert (answer.status_code, answer.text) == (
                503,
                "no rule took the rows: the rules reading this path stopped",
            )
            assert (await http.post(url, content=b"{}")).status_code == 404


@pytest.mark.parametrize("policy", ["dropNewest", "dropOldest"])
async def test_a_full_drop_policy_buffer_answers_503_and_nobody_gets_the_rows(
    services: Services, policy: str
) -> None:
    hub = services.data_server
    send, recv = trio.open_memory_channel[Batch](1)
    metrics = OpMetrics("source_s")
    dropping = DroppingOutbox(send, recv.clone(), policy, metrics)
    with trio.fail_after(10):
        async with (
            push_rule(hub, "/in", "s", outbox=dropping, rule="dropper"),
            push_rule(hub, "/in", "s", rule="blocker") as blocker,
            httpx.AsyncClient() as http,
        ):
            url = f"http://127.0.0.1:{hub.port}/in"
            assert (await http.post(url, content=b'{"n": 1}')).status_code == 200
            full = await http.post(url, content=b'{"n": 2}')
            assert full.status_code == 503
            assert full.text == "a rule reading this path is busy (its buffer is full); send again later"
            assert rows(await recv.receive()) == [{"n": 1}]
            assert (await http.post(url, content=b'{"n": 3}')).status_code == 200
            assert rows(await recv.receive()) == [{"n": 3}]
            # The block rule beside it got exactly the accepted requests: a 503 means nobody took the rows.
            assert [rows(await blocker.receive()) for _ in range(2)] == [[{"n": 1}], [{"n": 3}]]
            with pytest.raises(trio.WouldBlock):
                blocker.receive_nowait()
            endpoint = hub.push_routes.get("/in")
            assert endpoint is not None and endpoint.refused == 1
        assert metrics.dropped == 0  # refused and told, not silently dropped
    dropping.close()


async def test_https_with_the_data_servers_certificate(nursery: trio.Nursery, certs: Certs) -> None:
    tls = TlsConf(certfile=str(certs.server_cert), keyfile=str(certs.server_key))
    services = Services(
        source_conf=SourceConf(http_server_ip="127.0.0.1", http_server_port=0, http_server_tls=tls)
    )
    services.attach(nursery)
    hub = services.data_server
    with trio.fail_after(20):
        async with push_rule(hub, "/in") as recv:
            client = ssl.create_default_context(cafile=str(certs.ca))
            async with httpx.AsyncClient(verify=client) as http:
                for n in range(3):
                    answer = await http.post(f"https://127.0.0.1:{hub.port}/in", content=b'{"s": %d}' % n)
                    assert answer.status_code == 200
            assert [rows(await recv.receive()) for _ in range(3)] == [[{"s": n}] for n in range(3)]
            async with RawHttp.open(hub.port, tls=client) as raw:  # keep-alive over TLS too
                assert (await raw.request("POST", "/in", b'{"s": 9}'))[0] == 200
                assert (await raw.request("POST", "/in", b'{"s": 10}'))[0] == 200
            with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port gets nowhere
                async with httpx.AsyncClient() as plain:
                    await plain.post(f"http://127.0.0.1:{hub.port}/in", content=b"{}")
    services.attach(None)


async def test_a_websocket_and_a_push_source_share_a_path(services: Services) -> None:
    """Upgrades on a path go to its websocket source, plain requests to its push source."""
    hub = services.data_server
    send, recv = trio.open_memory_channel[Batch](10)
    with trio.fail_after(10):
        async with (
            push_rule(hub, "/in") as pushed,
            hub.subscribe("/in", "w", json_decoder(), send, WsConf(), **registrant(make_ctx(None))),
        ):
            async with connect(hub.port, "/in") as ws:
                await ws.send_message('{"via": "ws"}')
                assert rows(await recv.receive()) == [{"via": "ws"}]
            async with httpx.AsyncClient() as http:
                answer = await http.post(f"http://127.0.0.1:{hub.port}/in", content=b'{"via": "http"}')
            assert answer.status_code == 200
            assert rows(await pushed.receive()) == [{"via": "http"}]
            with pytest.raises(trio.WouldBlock):
                recv.receive_nowait()


async def test_an_open_path_on_a_public_bind_is_logged(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    services = Services(source_conf=SourceConf(http_server_ip="0.0.0.0", http_server_port=0))
    services.attach(nursery)
    hub = services.data_server
    with trio.fail_after(10):
        async with push_rule(hub, "/open"), push_rule(hub, "/closed", conf=PushConf(token=TOKEN)):
            pass
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["httppush path /open takes data from anyone who can reach the data server"]


async def test_waiting_bodies_are_bounded_by_the_inbound_budget(nursery: trio.Nursery) -> None:
    """Bodies held for a rule that does not take them count against ``maxInboundBytes``: once it is spent, other
    requests are not read (TCP pushes back) instead of the daemon holding every body, and no two readers can
    hold parts of the budget waiting for each other."""
    total = 1024 * 1024
    services = Services(
        source_conf=SourceConf(http_server_ip="127.0.0.1", http_server_port=0, max_inbound_bytes=total)
    )
    services.attach(nursery)
    hub = services.data_server
    body = b'{"b": "' + b"x" * 300_000 + b'"}'
    clients = 6
    with trio.fail_after(20):
        async with push_rule(hub, "/in", buffer=1, conf=PushConf(max_message_size=0)) as recv:
            url = f"http://127.0.0.1:{hub.port}/in"
            answers: list[int] = []

            async def post() -> None:
                async with httpx.AsyncClient(timeout=20) as http:
                    answers.append((await http.post(url, content=body)).status_code)

            async with trio.open_nursery() as posting:
                for _ in range(clients):
                    posting.start_soon(post)
                endpoint = hub.push_routes.get("/in")
                assert endpoint is not None
                pusher = endpoint.pushers[0]
                budget_lot = hub.budget._lot
                # Settled: one body sits in the rule's buffer, some wait for room there, the rest for the budget.
                while 1 + len(pusher.pending) + budget_lot.statistics().tasks_waiting < clients:
                    await trio.testing.wait_all_tasks_blocked()
                assert budget_lot.statistics().tasks_waiting > 0  # the budget stopped some readers
                assert hub.budget.used == 3 * len(body) <= total  # what is held is the bodies taken in
                for _ in range(clients):
                    [event] = await recv.receive()
                    assert isinstance(event, Event) and len(event.data["b"]) == 300_000
            assert answers == [200] * clients
        assert hub.budget.used == 0
