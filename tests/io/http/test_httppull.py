"""The ``httppull`` source (runtime/io/http/pull.py, conf.py, connector.py) against a real local HTTP server.

Rules: 127.0.0.1 only, port 0, an absolute ``trio.fail_after`` on every I/O test; waits are on server events
or a polled condition, never a fixed sleep. Timing itself (the interval) is proven under a MockClock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from runtime.clock import Clock
from runtime.engine import Engine
from runtime.errors import EngineError, PlanError, SourceError
from runtime.io.contract import IoContext, SourceSpec
from runtime.io.http import connector
from runtime.io.http.connector import httppull_source
from runtime.io.http.pull import CONNECTED, DISCONNECTED, HttpPullSource
from runtime.io.registry import builtin_registry
from runtime.io.services import Services
from runtime.model import Batch, ErrorItem, Event
from tests.io.http.local_http import LocalHttp, Recorded, Reply, server_context
from tests.tls_certs import Certs

SECRET = "s3cret-token"


def pull_spec(props: dict[str, Any], datasource: str = "/data", fmt: str = "json") -> SourceSpec:
    ctx = IoContext(
        rule_id="r1", clock=Clock(), services=Services(), logger=logging.getLogger("oort.rule.r1")
    )
    return SourceSpec(
        stream="feed", type="httppull", datasource=datasource, format=fmt, props=props, options={}, ctx=ctx
    )


def make_source(props: dict[str, Any], datasource: str = "/data", fmt: str = "json") -> HttpPullSource:
    source = httppull_source(pull_spec(props, datasource, fmt))
    assert isinstance(source, HttpPullSource)
    return source


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll a condition the source updates without an event (the caller bounds the wait with ``fail_after``)."""
    while not predicate():  # noqa: ASYNC110 - connection metrics have no change event to wait on
        await trio.sleep(0.005)


def rows(batch: Batch) -> list[Any]:
    return [item.data if isinstance(item, Event) else item for item in batch]


# -- configuration -----------------------------------------------------------------------------------------


async def test_every_conf_problem_is_listed_at_once() -> None:
    with pytest.raises(PlanError) as caught:
        make_source(
            {
                "urll": "http://x",
                "interval": "soon",
                "bodyType": "yaml",
                "method": "fetch",
                "tlsMinVersion": "ssl3",
                "states": [1],
            }
        )
    message = caught.value.message
    assert "stream feed: httppull conf group: urll: unknown key; did you mean 'url'?" in message
    assert "interval: expected a duration like '5s' or '500ms', got 'soon'" in message
    assert "bodyType: expected one of" in message and "method: expected one of get, post" in message
    assert "tlsMinVersion" in message and "states: expected a table" in message
    assert "url: required" in message
    with pytest.raises(PlanError, match="expected an http:// or https:// URL, got 'ftp://h/data'"):
        make_source({"url": "ftp://h"})
    with pytest.raises(PlanError, match="privateKeyPath: set without certificationPath"):
        make_source({"url": "http://h", "privateKeyPath": "k.pem"})
    with pytest.raises(PlanError, match="FORMAT must be json"):
        make_source({"url": "http://h", "responseType": "body"}, fmt="delimited")
    # The registry runs the same check before the REST API saves a conf group.
    with pytest.raises(PlanError, match="group x: timeout: must not be negative"):
        builtin_registry().check_conf("sources", "httppull", {"url": "http://h", "timeout": -1}, "group x")
    builtin_registry().check_conf("sources", "HttpPull", {"url": "http://h", "interval": "1m"}, "group y")


async def test_defaults_and_durations_follow_ekuiper() -> None:
    source = make_source({"url": "http://h:1/api", "interval": 250, "timeout": "2s", "incremental": True})
    conf = source._conf
    assert conf.request.url == "http://h:1/api/data"  # url + DATASOURCE
    assert (conf.request.method, conf.request.body_type) == ("GET", "none")  # GET sends no body by default
    assert (conf.interval, conf.request.timeout, conf.incremental) == (0.25, 2.0, True)
    post = make_source({"url": "http://h", "method": "post", "headers": {"Authorization": SECRET}})
    assert (post._conf.request.method, post._conf.request.body_type) == ("POST", "json")
    assert SECRET not in repr(post) and SECRET not in repr(post._conf)


# -- polling -----------------------------------------------------------------------------------------------


async def test_get_with_headers_delivers_each_response_as_a_batch(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        server.set_body(b'[{"t": 1}, {"t": 2}]')
        await server.start(nursery)
        source = make_source(
            {
                "url": server.url,
                "interval": 30,
                "headers": {"X-Api-Key": SECRET, "Accept": "application/json"},
            }
        )
        send, recv = trio.open_memory_channel[Batch](4)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            first = await recv.receive()  # the first poll is made at once
            assert rows(first) == [{"t": 1}, {"t": 2}]
            assert isinstance(first[0], Event) and first[0].meta is None
            server.set_body(b'{"t": 3}')
            while rows(await recv.receive()) != [{"t": 3}]:
                pass
            rule.cancel_scope.cancel()
        request = server.requests[0]
        assert (request.method, request.target, request.body) == ("GET", "/data", b"")
        assert request.headers["x-api-key"] == SECRET and request.headers["accept"] == "application/json"
        assert "content-type" not in request.headers  # bodyType none
        assert {r.connection for r in server.requests} == {1}  # polls reuse one kept-alive connection
        assert source._ctx.connection.status == 0  # stopped


async def test_post_sends_the_body_with_its_content_type(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        source = make_source(
            {"url": server.url + "/api", "method": "post", "body": '{"q": 1}', "interval": 0}, datasource=""
        )
        send, recv = trio.open_memory_channel[Batch](4)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            assert rows(await recv.receive()) == [{}]
            text = make_source(
                {"url": server.url, "method": "put", "body": "a,b", "bodyType": "text", "interval": 0}
            )
            await rule.start(text.run, send)
            await recv.receive()
            rule.cancel_scope.cancel()
        post, put = server.requests
        assert (post.method, post.target, post.body) == ("POST", "/api", b'{"q": 1}')
        assert post.headers["content-type"] == "application/json"
        assert (put.method, put.body, put.headers["content-type"]) == ("PUT", b"a,b", "text/plain")
        assert source.polls == 1  # interval 0: one poll only


async def test_incremental_delivers_only_changed_bodies(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        server.set_body(b'{"v": "a"}')
        await server.start(nursery)
        source = make_source({"url": server.url, "interval": 10, "incremental": True})
        send, recv = trio.open_memory_channel[Batch](16)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            assert rows(await recv.receive()) == [{"v": "a"}]
            await server.wait_for(lambda: len(server.requests) >= 4)  # three unchanged answers...
            server.set_body(b'{"v": "b"}')
            assert rows(await recv.receive()) == [{"v": "b"}]  # ...delivered nothing: "b" comes next
            seen = len(server.requests)
            await server.wait_for(lambda: len(server.requests) >= seen + 3)
            server.set_body(b'{"v": "a"}')  # a change back is a change
            assert rows(await recv.receive()) == [{"v": "a"}]
            rule.cancel_scope.cancel()


async def test_without_incremental_every_answer_is_delivered(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        source = make_source({"url": server.url, "interval": 5})
        send, recv = trio.open_memory_channel[Batch](16)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            for _ in range(3):
                assert rows(await recv.receive()) == [{}]
            rule.cancel_scope.cancel()


async def test_malformed_body_is_reported_and_polling_goes_on(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        server.set_body(b"<html>oops</html>")
        await server.start(nursery)
        source = make_source(
            {"url": server.url, "interval": 10, "incremental": True}, datasource="/?token=" + SECRET
        )
        send, recv = trio.open_memory_channel[Batch](16)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            (error,) = await recv.receive()
            assert isinstance(error, ErrorItem) and "invalid JSON" in error.message
            assert SECRET not in error.message and "token=******" in error.message
            # incremental does not swallow a repeated bad body: each one is reported, as in eKuiper
            (again,) = await recv.receive()
            assert isinstance(again, ErrorItem)
            server.set_body(b'{"ok": true}')
            while True:
                batch = await recv.receive()
                if isinstance(batch[0], Event):
                    break
            assert rows(batch) == [{"ok": True}]
            assert source._ctx.connection.status == CONNECTED  # the server answered all along
            rule.cancel_scope.cancel()


async def test_failures_show_in_connection_metrics_and_polling_resumes(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(15):
        server = LocalHttp()
        await server.start(nursery)
        await server.stop()  # the port is known and nothing listens on it
        source = make_source(
            {"url": server.url, "interval": 10, "headers": {"Authorization": SECRET}},
            datasource="/data?apikey=" + SECRET,
        )
        connection = source._ctx.connection
        send, recv = trio.open_memory_channel[Batch](16)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)  # starts although the server is down
            await wait_until(lambda: connection.status == DISCONNECTED and source.polls >= 4)
            assert "Connection refused" in connection.last_disconnected_message
            assert (
                connection.last_disconnected_time > 0
                and connection.last_try_time >= connection.last_disconnected_time
            )
            await server.start(nursery)  # same port
            assert rows(await recv.receive()) == [{}]
            assert connection.status == CONNECTED
            assert connection.last_connected_time >= connection.last_disconnected_time

            server.set_body(b"", status=503)
            await wait_until(lambda: connection.status == DISCONNECTED)
            assert connection.last_disconnected_message == "response code error: 503 Service Unavailable"
            server.set_body(b'{"back": 1}')
            while rows(await recv.receive()) != [{"back": 1}]:
                pass
            rule.cancel_scope.cancel()
    messages = [r.getMessage() for r in caplog.records if r.name == "oort.rule.r1"]
    failures = [m for m in messages if "failed" in m]
    # Logged once per state change (down, up, down, up), not once per failed poll.
    assert len(failures) == 2 and sum("succeed again" in m for m in messages) == 2
    assert "Connection refused" in failures[0] and "polling again every 0.01s" in failures[0]
    assert all(SECRET not in r.getMessage() and SECRET not in str(r.args) for r in caplog.records)
    assert "apikey=******" in failures[0]


async def test_a_hanging_server_times_out_and_polls_continue(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        release = trio.Event()

        async def hang(_: Recorded) -> Reply:
            await release.wait()
            return Reply(body=b'{"late": 1}')

        server = LocalHttp(hang)
        await server.start(nursery)
        source = make_source({"url": server.url, "interval": 10, "timeout": 50})
        connection = source._ctx.connection
        send, recv = trio.open_memory_channel[Batch](16)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            await wait_until(lambda: connection.status == DISCONNECTED)
            assert connection.last_disconnected_message == "timed out after 0.05s"
            await server.wait_for(lambda: len(server.requests) >= 2)  # polling went on
            release.set()
            assert rows(await recv.receive()) == [{"late": 1}]
            rule.cancel_scope.cancel()


async def test_response_type_body_checks_the_code_field(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        server.set_body(b'{"code": 500, "message": "busy"}')
        await server.start(nursery)
        source = make_source({"url": server.url, "interval": 10, "responseType": "body"})
        connection = source._ctx.connection
        send, recv = trio.open_memory_channel[Batch](16)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            await wait_until(lambda: connection.status == DISCONNECTED)
            assert connection.last_disconnected_message == "response code error: 500 (the body's code field)"
            server.set_body(b'[{"code": 200, "v": 1}, {"code": 201, "v": 2}]')
            assert rows(await recv.receive()) == [{"code": 200, "v": 1}, {"code": 201, "v": 2}]
            rule.cancel_scope.cancel()


async def test_polls_follow_the_interval(mock_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    # The clock only moves when the test jumps it: "no poll yet" is then a fact, not a race. Each jump waits until
    # the source sleeps again. Should the test hang, the clock jumps after 5 idle real seconds, up to fail_after.
    mock_clock.autojump_threshold = 5
    with trio.fail_after(10_000):
        server = LocalHttp()
        await server.start(nursery)
        source = make_source({"url": server.url, "interval": "10s"})
        send, recv = trio.open_memory_channel[Batch](16)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            await recv.receive()  # the first poll, at 0 s
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(9.5)
            await trio.testing.wait_all_tasks_blocked()
            assert len(server.requests) == 1 and source.polls == 1
            mock_clock.jump(0.5)
            await recv.receive()  # at 10 s
            assert len(server.requests) == 2
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(35)  # at 45 s: the poll due at 20 s runs late...
            await recv.receive()
            await trio.testing.wait_all_tasks_blocked()
            assert (
                len(server.requests) == 3
            )  # ...once: the ticks of 30 s and 40 s are skipped, not made up in a burst
            mock_clock.jump(4.5)
            await trio.testing.wait_all_tasks_blocked()
            assert len(server.requests) == 3
            mock_clock.jump(0.5)  # the next tick is at 50 s (start + 5 intervals)
            await recv.receive()
            assert len(server.requests) == 4
            rule.cancel_scope.cancel()


async def test_states_render_the_url_and_follow_the_responses(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        pages = {"c1": b'{"cursor": "c2", "v": 1}', "c2": b'{"cursor": "c3", "v": 2}'}

        async def by_cursor(request: Recorded) -> Reply:
            return Reply(body=pages.get(request.target.rpartition("=")[2], b'{"v": 0}'))

        server = LocalHttp(by_cursor)
        await server.start(nursery)
        props = {"url": server.url, "interval": 5, "states": {"cursor": "c1", "unused": 7}}
        source = make_source(props, datasource="/page?cursor={{.cursor}}")
        send, recv = trio.open_memory_channel[Batch](16)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            assert rows(await recv.receive()) == [{"cursor": "c2", "v": 1}]
            assert rows(await recv.receive()) == [{"cursor": "c3", "v": 2}]
            assert rows(await recv.receive()) == [{"v": 0}]
            await server.wait_for(lambda: len(server.requests) >= 4)
            rule.cancel_scope.cancel()
        assert [r.target for r in server.requests[:4]] == [
            "/page?cursor=c1",
            "/page?cursor=c2",
            "/page?cursor=c3",
            "/page?cursor=c3",  # a response without the field keeps the state
        ]
    with pytest.raises(PlanError, match="url: a template needs 'states'"):
        make_source({"url": "http://h"}, datasource="/page?cursor={{.cursor}}")
    with pytest.raises(PlanError, match='httppull url: template: url:1:.*function "nope" not defined'):
        make_source({"url": "http://h", "states": {"a": 1}}, datasource="/{{nope .a}}")


# -- TLS ---------------------------------------------------------------------------------------------------


async def test_tls_with_a_ca_and_a_client_certificate(nursery: trio.Nursery, certs: Certs) -> None:
    with trio.fail_after(10):
        server = LocalHttp(
            ssl_context=server_context(str(certs.server_cert), str(certs.server_key), str(certs.ca))
        )
        await server.start(nursery)
        tls = {
            "rootCaPath": str(certs.ca),
            "certificationPath": str(certs.client_cert),
            "privateKeyPath": str(certs.client_key),
        }
        source = make_source({"url": server.url, "interval": 0, **tls})
        send, recv = trio.open_memory_channel[Batch](4)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            assert rows(await recv.receive()) == [{}]
            rule.cancel_scope.cancel()
        assert server.url.startswith("https://") and len(server.requests) == 1


async def test_a_wrong_ca_is_reported_with_its_reason(nursery: trio.Nursery, certs: Certs) -> None:
    with trio.fail_after(10):
        server = LocalHttp(ssl_context=server_context(str(certs.server_cert), str(certs.server_key)))
        await server.start(nursery)
        source = make_source({"url": server.url, "interval": 10, "rootCaPath": str(certs.other_ca)})
        connection = source._ctx.connection
        send, _recv = trio.open_memory_channel[Batch](4)
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            await wait_until(lambda: connection.status == DISCONNECTED)
            rule.cancel_scope.cancel()
        message = connection.last_disconnected_message
        assert message.startswith("TLS handshake failed: CERTIFICATE_VERIFY_FAILED"), message
        assert "unable to get local issuer certificate" in message
        assert server.requests == []
        # insecureSkipVerify accepts any certificate
        lax = make_source({"url": server.url, "interval": 0, "insecureSkipVerify": True})
        send, recv = trio.open_memory_channel[Batch](4)
        async with trio.open_nursery() as rule:
            await rule.start(lax.run, send)
            assert rows(await recv.receive()) == [{}]
            rule.cancel_scope.cancel()


async def test_unloadable_tls_files_fail_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    source = make_source({"url": "https://127.0.0.1:1", "rootCaPath": str(missing)})
    send, _recv = trio.open_memory_channel[Batch](1)
    with pytest.raises(SourceError, match=f"httppull TLS: cannot load root CA file '{missing}'"):
        await source.run(send)


# -- through the engine and the registry -------------------------------------------------------------------


async def test_stream_and_rule_through_the_engine(
    engine: Engine, tmp_path: Path, nursery: trio.Nursery
) -> None:
    with trio.fail_after(15):
        server = LocalHttp()
        server.set_body(b'[{"temp": 20}, {"temp": 30}]')
        await server.start(nursery)
        (tmp_path / "etc" / "sources").mkdir(exist_ok=True)
        (tmp_path / "etc" / "sources" / "httppull.toml").write_text(
            f'[default]\ninterval = "10s"\n\n[feed]\nurl = "{server.url}"\ninterval = "20ms"\n'
            f'headers = {{ Authorization = "Bearer {SECRET}" }}\n'
        )
        engine.create_stream(
            "stream", 'CREATE STREAM hot () WITH (TYPE="httppull", CONF_KEY="feed", DATASOURCE="/api/temps")'
        )
        async with engine.services.memory.subscribe("out/hot") as out:
            await engine.create_rule(
                {
                    "id": "hot",
                    "sql": "SELECT temp FROM hot WHERE temp > 25",
                    "actions": [{"memory": {"topic": "out/hot"}}],
                }
            )
            await engine.wait_status("hot", "running")
            topic, got = await out.receive()
            assert got == [{"temp": 30}]
            server.set_body(b"not json")
            seen = len(server.requests)
            await server.wait_for(lambda: len(server.requests) >= seen + 2)
            server.set_body(b'{"temp": 40}')
            while (await out.receive())[1] != [{"temp": 40}]:
                pass
        status = engine.rule_status("hot")
        assert status["source_hot_0_exceptions_total"] >= 1
        assert "invalid JSON" in status["source_hot_0_last_exception"]
        assert status["source_hot_0_connection_status"] == 1
        assert SECRET not in str(status)
        assert server.requests[0].target == "/api/temps"
        assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
        await engine.stop_rule("hot")


async def test_connection_test_answers_without_details(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        registry, services, clock = builtin_registry(), Services(), Clock()
        props = {"url": server.url, "datasource": "/health", "headers": {"Authorization": SECRET}}
        answer = await registry.test_connection("httppull", services, clock, props)
        assert answer == f"GET {server.url}/health answered 200"
        assert server.requests[-1].headers["authorization"] == SECRET
        server.set_body(b"", status=404)
        with pytest.raises(EngineError, match="cannot get an acceptable answer") as caught:
            await connector.test_httppull_connection(services, clock, props)
        assert "404" not in caught.value.message  # the reason goes to the log only
        assert any("status 404" in r.getMessage() for r in caplog.records)
        with pytest.raises(PlanError, match="url: required"):
            await connector.test_httppull_connection(services, clock, {"datasource": "/x"})


# -- oAuth -------------------------------------------------------------------------------------------------


def token_server() -> LocalHttp:
    """Answers /token and /refresh with numbered tokens, and everything else with the Authorization it got."""
    issued = iter(range(1, 100))

    async def reply(request: Recorded) -> Reply:
        if request.target in ("/token", "/refresh"):
            n = next(issued)
            return Reply(body=orjson.dumps({"token": f"t{n}", "refresh": f"r{n}", "expires": 30}))
        return Reply(body=orjson.dumps({"auth": request.headers.get("authorization", "")}))

    return LocalHttp(reply)


async def test_oauth_token_renders_headers_and_is_refreshed_at_half_life(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mock_clock.autojump_threshold = 5  # see test_polls_follow_the_interval
    with trio.fail_after(10_000):
        server = token_server()
        await server.start(nursery)
        oauth = {
            "access": {
                "url": server.url + "/token",
                "body": '{"user": "u", "password": "pw"}',
                "expire": "30",
            },
            "refresh": {
                "url": server.url + "/refresh",
                "headers": {"X-Refresh": "{{.refresh}}"},
                "body": "{}",
            },
        }
        source = make_source(
            {
                "url": server.url,
                "interval": "10s",
                "headers": {"Authorization": "Bearer {{.token}}"},
                "oAuth": oauth,
            }
        )
        send, recv = trio.open_memory_channel[Batch](16)
        seen = []
        async with trio.open_nursery() as rule:
            await rule.start(source.run, send)
            for _ in range(4):  # polls at 0, 10, 20 (then the token is 20 s old: refreshed) and 30 s
                seen.append(rows(await recv.receive())[0]["auth"])
                await trio.testing.wait_all_tasks_blocked()
                mock_clock.jump(10)
            rule.cancel_scope.cancel()
        assert seen == ["Bearer t1", "Bearer t1", "Bearer t1", "Bearer t2"]
        token, refresh = server.requests[0], server.requests[4]
        assert (token.method, token.target, token.body) == (
            "POST",
            "/token",
            b'{"user": "u", "password": "pw"}',
        )
        assert token.headers["content-type"] == "application/json"
        assert (refresh.target, refresh.headers["x-refresh"]) == ("/refresh", "r1")
    assert not any(t in r.getMessage() for r in caplog.records for t in ("t1", "t2", "r1", "pw"))


async def test_oauth_without_a_token_fails_the_start(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        server.set_body(b"no", status=401)
        await server.start(nursery)
        source = make_source({"url": server.url, "oAuth": {"access": {"url": server.url + "/token"}}})
        send, _recv = trio.open_memory_channel[Batch](4)
        with pytest.raises(
            SourceError, match=r"cannot get an access token from http://.*/token: answered 401"
        ):
            await source.run(send)
    with pytest.raises(PlanError) as caught:
        make_source({"url": "http://h", "oauth": {"acess": {}, "refresh": {"urll": "x"}}})
    assert "acess: unknown key; did you mean 'access'?" in caught.value.message
    with pytest.raises(PlanError, match="access.expire: expected a number of seconds"):
        make_source({"url": "http://h", "oauth": {"access": {"url": "http://h/t", "expire": "soon"}}})
    # an empty access url switches oAuth off, as in eKuiper (a UI may save an empty form)
    assert make_source({"url": "http://h", "oauth": {"access": {"url": ""}}})._tokens is None
