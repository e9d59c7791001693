"""The ``rest`` sink (runtime/io/http/rest.py, conf.py, connector.py) against a real local HTTP server.

Rules: 127.0.0.1 only, port 0, an absolute ``trio.fail_after`` on every I/O test.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio

from runtime.clock import Clock
from runtime.engine import Engine
from runtime.errors import EncodeError, PlanError, SinkError, SinkUnavailable
from runtime.io.contract import IoContext, SinkSpec
from runtime.io.http.connector import rest_sink
from runtime.io.http.rest import RestSink, encode_form
from runtime.io.services import Services
from runtime.io.sinkprops import SinkProps
from runtime.io.sinktemplate import RenderFailure
from tests.io.http.local_http import LocalHttp, Recorded, Reply, server_context
from tests.tls_certs import Certs

SECRET = "s3cret-token"


def make_sink(**props: Any) -> RestSink:
    ctx = IoContext(
        rule_id="r1", clock=Clock(), services=Services(), logger=logging.getLogger("oort.rule.r1")
    )
    sink = rest_sink(SinkSpec(type="rest", index=0, props=props, ctx=ctx))
    assert isinstance(sink, RestSink)
    return sink


@asynccontextmanager
async def opened(**props: Any) -> AsyncIterator[RestSink]:
    sink = make_sink(**props)
    await sink.open()
    try:
        yield sink
    finally:
        await sink.aclose()


# -- configuration -----------------------------------------------------------------------------------------


async def test_every_property_problem_is_listed_at_once() -> None:
    with pytest.raises(PlanError) as caught:
        make_sink(metod="post", timeout="fast", bodyType="csv", debugResp="yes")
    message = caught.value.message
    assert "rest sink (action 0): metod: unknown key; did you mean 'method'?" in message
    assert "timeout: expected a duration" in message and "bodyType: expected one of" in message
    assert "debugResp: expected true or false" in message and "url: required" in message
    with pytest.raises(PlanError, match="format: must be 'json' when bodyType is 'json', got 'delimited'"):
        make_sink(url="http://h", format="delimited")
    with pytest.raises(PlanError, match="format: must be 'urlencoded' when bodyType is 'form'"):
        make_sink(url="http://h", bodyType="form", format="json")
    with pytest.raises(PlanError, match="format: unknown format 'yaml'"):
        make_sink(url="http://h", bodyType="text", format="yaml")
    with pytest.raises(PlanError, match="expected an http:// or https:// URL, got 'ws://h/x'"):
        make_sink(url="ws://h/x?token=" + SECRET)
    with pytest.raises(
        PlanError, match=r'rest sink \(action 0\): template: url:1:\d+: function "nofunc" not defined'
    ):
        make_sink(url="http://h/{{nofunc .a}}")
    with pytest.raises(PlanError, match="oAuth: 'access' is required"):
        make_sink(url="http://h", oAuth={"refresh": {"url": "http://h/token"}})


async def test_defaults_and_ignored_runtime_properties() -> None:
    # The runtime's keys (sendSingle, fields, the cache's and the v1 retry keys) never reach the connector: an
    # action carrying all of them builds, with the defaults.
    retry_keys = dict.fromkeys(("retryInterval", "retryCount", "cacheLength", "cacheSaveInterval"), 1)
    action = {"url": "http://h/api", "sendSingle": True, "fields": ["a"], "schemaId": "", "enableCache": True}
    sink = make_sink(**SinkProps.from_action({**action, "resendInterval": 10, **retry_keys}).connector_props)
    request = sink.conf.request
    assert (request.method, request.body_type, request.timeout, sink.conf.format) == (
        "POST",
        "json",
        5.0,
        "json",
    )
    form = make_sink(url="http://h", bodyType="form")
    assert form.conf.format == "urlencoded"  # the format form needs, when none is given
    get = make_sink(url="http://h", method="get")
    assert get.conf.request.body_type == "none"  # GET sends no body unless told, as in eKuiper


async def test_form_encoding_follows_ekuiper() -> None:
    body = encode_form(
        {"b": "x y", "a": 1, "f": 0.5, "big": 1e21, "t": True, "n": None, "l": [1, "z"], "o": {"k": 1}}
    )
    assert body == b"a=1&b=x+y&big=1000000000000000000000&f=0.5&l=1&l=z&n=&o=%7B%22k%22%3A1%7D&t=true"
    with pytest.raises(EncodeError, match="set sendSingle"):
        encode_form([{"a": 1}])


# -- sending -----------------------------------------------------------------------------------------------


async def test_rows_go_as_json_with_headers_and_method(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        headers = {"Authorization": f"Bearer {SECRET}", "X-Device": "d1"}
        async with opened(url=server.url + "/api/in", method="put", headers=headers) as sink:
            await sink.write({"a": 1, "s": "x"})
            await sink.write([{"a": 2}, {"a": 3}])
            assert SECRET not in repr(sink)
            assert sink._ctx.connection.status == 1
        one, many = server.requests
        assert (one.method, one.target) == ("PUT", "/api/in")
        assert orjson.loads(one.body) == {"a": 1, "s": "x"} and orjson.loads(many.body) == [
            {"a": 2},
            {"a": 3},
        ]
        assert one.headers["content-type"] == "application/json"
        assert one.headers["authorization"] == f"Bearer {SECRET}" and one.headers["x-device"] == "d1"


async def test_text_form_formdata_and_none_bodies(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        async with opened(url=server.url, bodyType="text", format="delimited", hasHeader=True) as sink:
            await sink.write([{"a": 1, "b": 2}, {"a": 3, "b": 4}])
            await sink.write('{"rendered": "by dataTemplate"}')  # a dataTemplate's output goes as it is
            with pytest.raises(EncodeError, match="bad template"):
                await sink.write(RenderFailure("bad template"))
        async with opened(url=server.url, bodyType="form") as sink:
            await sink.write({"name": "a b", "n": 2})
            with pytest.raises(EncodeError):
                await sink.write([{"a": 1}])
        async with opened(
            url=server.url, bodyType="xml", format="json", headers={"content-type": "text/x-mine"}
        ) as sink:
            await sink.write({"a": 1})
        async with opened(
            url=server.url, bodyType="formdata", fileFieldName="upload", formData={"k": "v"}
        ) as sink:
            await sink.write({"a": 1})
        async with opened(url=server.url, method="delete", bodyType="none") as sink:
            await sink.write({"ignored": True})
            with pytest.raises(EncodeError, match="no body either"):  # a failed dataTemplate sends nothing
                await sink.write(RenderFailure("no body either"))
        text, rendered, form, xml, multipart, delete = server.requests
        assert (text.body, text.headers["content-type"]) == (b"a,b\n1,2\n3,4", "text/plain")
        assert rendered.body == b'{"rendered": "by dataTemplate"}'
        assert (form.body, form.headers["content-type"]) == (
            b"n=2&name=a+b",
            "application/x-www-form-urlencoded",
        )
        assert xml.headers["content-type"] == "text/x-mine"  # the configured header wins over the body type's
        assert multipart.headers["content-type"].startswith("multipart/form-data; boundary=")
        assert b'name="upload"; filename="' in multipart.body and b'{"a":1}' in multipart.body
        assert b'name="k"\r\n\r\nv' in multipart.body
        assert (delete.method, delete.body) == ("DELETE", b"")


async def test_gzip_compression(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        async with opened(url=server.url, compression="gzip") as sink:
            await sink.write({"a": 1})
        (request,) = server.requests
        assert request.headers["content-encoding"] == "gzip"
        assert orjson.loads(gzip.decompress(request.body)) == {"a": 1}


async def test_url_and_header_templates_render_per_message(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        props = {"url": server.url + "/dev/{{.id}}", "headers": {"X-Kind": "{{.kind}}", "X-Fixed": "f"}}
        async with opened(**props) as sink:
            await sink.write({"id": "d7", "kind": "temp"})
            await sink.write('{"id": "d8", "kind": "from-template"}')
            with pytest.raises(EncodeError, match="not JSON"):
                await sink.write("plain text")
        first, second = server.requests
        assert (first.target, first.headers["x-kind"], first.headers["x-fixed"]) == ("/dev/d7", "temp", "f")
        assert (second.target, second.headers["x-kind"]) == ("/dev/d8", "from-template")
        async with opened(url="{{.where}}") as sink:
            with pytest.raises(SinkError, match="the url template rendered expected an http"):
                await sink.write({"where": "file:///etc/passwd"})


async def test_one_connection_serves_many_writes(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        async with opened(url=server.url) as sink:
            for i in range(25):
                await sink.write({"i": i})
        assert len(server.requests) == 25 and server.connections == 1
        assert {r.connection for r in server.requests} == {1}


# -- failures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, SinkError),
        (404, SinkError),
        (408, SinkUnavailable),
        (429, SinkUnavailable),
        (500, SinkUnavailable),
        (503, SinkUnavailable),
    ],
)
async def test_status_codes_sort_into_permanent_and_retriable(
    nursery: trio.Nursery, status: int, error: type[SinkError]
) -> None:
    with trio.fail_after(10):
        server = LocalHttp()
        server.set_body(b"echo: " + SECRET.encode(), status=status)
        await server.start(nursery)
        async with opened(url=f"{server.url}/api?token={SECRET}", headers={"Authorization": SECRET}) as sink:
            with pytest.raises(SinkError) as caught:
                await sink.write({"a": 1})
            assert type(caught.value) is error
            message = caught.value.message
            assert f"POST {server.url}/api?token=****** answered {status}" in message
            assert SECRET not in message  # neither the query, the header nor the echoing body
            assert sink._ctx.connection.status == 1  # the server answered: the connection is fine


async def test_response_type_body_and_debug_resp(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="oort.rule.r1")
    with trio.fail_after(10):
        server = LocalHttp()
        server.set_body(b'{"code": 503, "msg": "full"}')
        await server.start(nursery)
        async with opened(url=server.url, responseType="body", debugResp=True) as sink:
            with pytest.raises(
                SinkError, match=r"response code error: 503 .*; response body: .*full"
            ) as caught:
                await sink.write({"a": 1})
            assert type(caught.value) is SinkError
            server.set_body(b'{"code": 200}')
            await sink.write({"a": 2})
        assert any(
            'answered 200 OK: {"code": 200}' in r.getMessage() and r.levelno == logging.DEBUG
            for r in caplog.records
        )


async def test_unreachable_target_is_unavailable_and_shows_in_metrics(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(10):
        server = LocalHttp()
        await server.start(nursery)
        await server.stop()
        async with opened(url=server.url, headers={"Authorization": SECRET}) as sink:
            connection = sink._ctx.connection
            for _ in range(3):
                with pytest.raises(SinkUnavailable, match="Connection refused"):
                    await sink.write({"a": 1})
            assert connection.status == -1 and "Connection refused" in connection.last_disconnected_message
            await server.start(nursery)  # same port: back
            await sink.write({"a": 2})
            assert connection.status == 1
        assert orjson.loads(server.requests[0].body) == {"a": 2}
    messages = [r.getMessage() for r in caplog.records if r.name == "oort.rule.r1"]
    assert sum("failed" in m for m in messages) == 1 and sum("answers again" in m for m in messages) == 1
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def test_a_slow_target_times_out(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        release = trio.Event()

        async def hang(_: Recorded) -> Reply:
            await release.wait()
            return Reply()

        server = LocalHttp(hang)
        await server.start(nursery)
        async with opened(url=server.url, timeout="50ms") as sink:
            with pytest.raises(SinkUnavailable, match="timed out after 0.05s"):
                await sink.write({"a": 1})
            release.set()
        with pytest.raises(SinkError, match="is not open"):
            await sink.write({"a": 1})
        await sink.aclose()  # idempotent


# -- TLS ---------------------------------------------------------------------------------------------------


async def test_tls_ca_client_certificate_and_wrong_ca(nursery: trio.Nursery, certs: Certs) -> None:
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
        async with opened(url=server.url, **tls) as sink:
            await sink.write({"secure": True})
        assert orjson.loads(server.requests[0].body) == {"secure": True}
        async with opened(url=server.url, **{**tls, "rootCaPath": str(certs.other_ca)}) as sink:
            with pytest.raises(SinkUnavailable, match="TLS handshake failed: CERTIFICATE_VERIFY_FAILED"):
                await sink.write({"a": 1})
        assert len(server.requests) == 1
        missing = make_sink(url=server.url, rootCaPath=str(certs.ca) + ".missing")
        with pytest.raises(SinkError, match="rest sink TLS: cannot load root CA file"):
            await missing.open()


# -- through the engine --------------------------------------------------------------------------------------


async def test_rule_sends_rows_single_and_batched(engine: Engine, nursery: trio.Nursery) -> None:
    with trio.fail_after(15):
        server = LocalHttp()
        await server.start(nursery)
        engine.create_stream(
            "stream", 'CREATE STREAM readings () WITH (TYPE="memory", DATASOURCE="in/readings")'
        )
        await engine.create_rule(
            {
                "id": "out",
                "sql": "SELECT id, v * 10 AS v FROM readings WHERE v > 0 GROUP BY COUNTWINDOW(3)",
                "actions": [
                    {
                        "rest": {
                            "url": server.url + "/single",
                            "sendSingle": True,
                            "headers": {"X-Key": SECRET},
                        }
                    },
                    {"rest": {"url": server.url + "/batch", "method": "put"}},
                ],
            }
        )
        await engine.wait_status("out", "running")
        await engine.publish("in/readings", [{"id": "a", "v": 1}, {"id": "b", "v": 0}, {"id": "c", "v": 2}])
        await server.wait_for(lambda: len(server.requests) == 3)
        single = sorted((r for r in server.requests if r.target == "/single"), key=lambda r: r.body)
        (batch,) = [r for r in server.requests if r.target == "/batch"]
        assert [orjson.loads(r.body) for r in single] == [{"id": "a", "v": 10}, {"id": "c", "v": 20}]
        assert (batch.method, orjson.loads(batch.body)) == (
            "PUT",
            [{"id": "a", "v": 10}, {"id": "c", "v": 20}],
        )
        # The server saw every request; the rule counts the emission (one per sink) once the answers are read.
        sent = ("sink_rest_0_0_records_out_total", "sink_rest_1_0_records_out_total")
        while any(engine.rule_status("out")[key] < 1 for key in sent):  # noqa: ASYNC110 - no event to wait on
            await trio.sleep(0.005)
        status = engine.rule_status("out")
        assert (
            status["sink_rest_0_0_connection_status"] == 1 and status["sink_rest_0_0_exceptions_total"] == 0
        )
        assert SECRET not in str(status)
        await engine.stop_rule("out")


async def test_oauth_token_goes_into_the_headers(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(10):

        async def reply(request: Recorded) -> Reply:
            if request.target == "/token":
                return Reply(body=b'{"access_token": "tok-1"}')
            return Reply(body=b"{}")

        server = LocalHttp(reply)
        await server.start(nursery)
        oauth = {"access": {"url": server.url + "/token", "body": '{"code": "abc"}', "expire": 3600}}
        headers = {"Authorization": "Bearer {{.access_token}}", "X-Static": "s"}
        async with opened(url=server.url + "/in", headers=headers, oAuth=oauth) as sink:
            await sink.write({"a": 1})
            await sink.write({"a": 2})
        token, first, second = server.requests
        assert (token.target, token.body) == ("/token", b'{"code": "abc"}')
        assert first.headers["authorization"] == second.headers["authorization"] == "Bearer tok-1"
        assert first.headers["x-static"] == "s"
        server.set_body(b"down", status=503)
        refused = make_sink(url=server.url + "/in", headers=headers, oAuth=oauth)
        with pytest.raises(SinkError, match=r"cannot get an access token from .*/token: answered 503"):
            await refused.open()
    assert not any("tok-1" in r.getMessage() for r in caplog.records)
