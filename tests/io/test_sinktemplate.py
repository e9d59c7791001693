"""``dataTemplate``: how SinkProps turns emissions into rendered messages (eKuiper's transform step), and how
each sink that encodes sends a rendered message as it is (file, log, memory, websocket server and client)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from runtime.clock import Clock
from runtime.errors import EncodeError, PlanError
from runtime.io.contract import IoContext, SinkSpec
from runtime.io.file import FileSink
from runtime.io.log import LogSink
from runtime.io.memory.connector import MemorySink
from runtime.io.services import Services
from runtime.io.sinkprops import SinkProps
from runtime.io.sinktemplate import RenderFailure, message_data, message_text, rendered_rows
from runtime.io.websocket.client_mode import ClientSink
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.server_mode import ServerSink
from runtime.model import Row
from tests.io.websocket.client_peer import Peer, engine_services
from tests.io.websocket.test_data_server import LOCAL, connect

ROWS: list[Row] = [{"id": 1, "t": 25.5, "tag": "a"}, {"id": 2, "t": 31.0, "tag": "b"}]


def _messages(props: dict[str, Any], emission: list[Row]) -> list[Any]:
    return SinkProps.from_action(props).messages(emission)


def test_send_single_renders_each_row_and_the_output_is_the_message() -> None:
    props = {"sendSingle": True, "dataTemplate": '{"content":{{json .}},"hot":{{gt .t 30.0}}}'}
    assert not SinkProps.from_action(props).is_plain
    assert _messages(props, ROWS) == [
        '{"content":{"id":1,"t":25.5,"tag":"a"},"hot":false}',
        '{"content":{"id":2,"t":31,"tag":"b"},"hot":true}',
    ]


def test_a_rendered_message_keeps_what_it_was_rendered_from_for_templated_properties() -> None:
    single, listed = (
        _messages({"sendSingle": True, "dataTemplate": "t={{.t}}"}, ROWS[:1])[0],
        _messages({"dataTemplate": "{{len .}} rows"}, ROWS)[0],
    )
    assert (single, listed) == ("t=25.5", "2 rows")
    assert message_data(single) == ROWS[0] and message_data(listed) == ROWS
    assert message_data('{"from":"a cache page"}') == {"from": "a cache page"}
    assert message_data("plain") == "plain" and message_data(ROWS) == ROWS


def test_without_send_single_the_template_gets_the_list_of_rows() -> None:
    props = {"dataTemplate": "<ul>{{range .}}<li>{{.tag}}</li>{{end}}</ul>"}
    assert _messages(props, ROWS) == ["<ul><li>a</li><li>b</li></ul>"]
    assert _messages(props, []) == ["<ul></ul>"]


def test_omit_if_empty_decides_before_the_template() -> None:
    assert _messages({"omitIfEmpty": True, "dataTemplate": "x"}, []) == []
    both = {"omitIfEmpty": True, "sendSingle": True, "dataTemplate": "{{len .}}"}
    assert _messages(both, [{}, {"a": 1}]) == ["1"]


def test_a_non_text_format_reads_the_output_back_as_rows() -> None:
    props = {"format": "binary", "sendSingle": True, "dataTemplate": '{"self":"{{.tag}}","n":{{.id}}}'}
    assert _messages(props, ROWS) == [{"self": "a", "n": 1}, {"self": "b", "n": 2}]


def test_fields_and_data_field_apply_to_the_decoded_output_as_in_ekuiper() -> None:
    template = '{"d":{"x":{{.id}},"y":"{{.tag}}"},"k":{{.id}}}'
    picked = _messages({"sendSingle": True, "dataTemplate": template, "fields": ["k", "zz"]}, ROWS)
    assert picked == [{"k": 1, "zz": None}, {"k": 2, "zz": None}]  # eKuiper keeps a missing field as null
    inner = _messages({"sendSingle": True, "dataTemplate": template, "dataField": "d"}, ROWS)
    assert inner == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]
    dropped = _messages({"sendSingle": True, "dataTemplate": template, "excludeFields": ["d"]}, ROWS)
    assert dropped == [{"k": 1}, {"k": 2}]
    # over a list, dataField takes the first element's key (eKuiper's TransItem)
    first = _messages({"dataTemplate": '[{"d":{"x":1}},{"d":{"x":2}}]', "dataField": "d"}, ROWS)
    assert first == [{"x": 1}]
    nothing = _messages({"sendSingle": True, "dataTemplate": "{}", "dataField": "d"}, ROWS)
    assert nothing == []  # the key is missing: no message, as eKuiper sends none
    (scalar,) = _messages({"dataTemplate": "{{json .}}", "dataField": "tag"}, ROWS)
    assert isinstance(scalar, RenderFailure) and "invalid transform result type" in scalar.reason


def test_a_failing_template_fails_only_its_message() -> None:
    props = {"sendSingle": True, "dataTemplate": "{{.tag.x}}{{index .list 3}}"}
    first, second = _messages(props, [{"tag": None}, {"tag": {"x": 1}, "list": [1]}])
    for failure, reason in (
        (first, "nil pointer evaluating interface {}.x"),
        (second, "error calling index: index out of range: 3"),
    ):
        assert isinstance(failure, RenderFailure)
        with pytest.raises(EncodeError, match=reason):
            message_text(failure)
        with pytest.raises(EncodeError, match=reason):
            failure.encode()  # a sink that encodes the str itself (mqtt) refuses it too
    bad_json = _messages({"dataTemplate": "not json", "fields": ["a"]}, ROWS)
    assert isinstance(bad_json[0], RenderFailure) and "fail to decode data" in bad_json[0].reason


def test_a_bad_template_refuses_the_action_with_its_position() -> None:
    with pytest.raises(PlanError, match=r"'dataTemplate': template: sink:2:4: function \"nope\" not defined"):
        SinkProps.from_action({"dataTemplate": "ok\n{{ nope }}"})


def test_rendered_rows_are_what_a_row_sink_receives() -> None:
    assert rendered_rows('{"a":1}') == [{"a": 1}]
    assert rendered_rows('[{"a":1},{"a":2}]') == [{"a": 1}, {"a": 2}]
    for bad in ("[1]", "3", "text"):
        with pytest.raises(EncodeError):
            rendered_rows(bad)


def _ctx(services: Services | None = None) -> IoContext:
    return IoContext(
        rule_id="r", clock=Clock(), services=services or Services(), logger=logging.getLogger("t")
    )


def _spec(kind: str, services: Services | None = None, **props: Any) -> SinkSpec:
    return SinkSpec(type=kind, index=0, props=props, ctx=_ctx(services))


async def test_file_sink_writes_rendered_text_as_is(tmp_path: Path) -> None:
    lines = tmp_path / "out.txt"
    sink = FileSink(_spec("file", path=str(lines)))
    await sink.open()
    await sink.write("id=1;t=25.5")
    with pytest.raises(EncodeError):
        await sink.write(RenderFailure("boom"))
    await sink.write('{"a": 1,  "spaced":true}')
    await sink.aclose()
    assert lines.read_bytes() == b'id=1;t=25.5\n{"a": 1,  "spaced":true}\n'

    array = tmp_path / "out.json"
    sink = FileSink(_spec("file", path=str(array), fileType="json"))
    await sink.open()
    await sink.write('{"a": 1}')
    await sink.write(
        '{\n  "b": [1,\n 2]\n}'
    )  # spans lines: written compactly, the file stays one element per line
    with pytest.raises(EncodeError, match="fileType json needs JSON"):
        await sink.write("plain text")
    await sink.aclose()
    assert orjson.loads(array.read_bytes()) == [{"a": 1}, {"b": [1, 2]}]
    assert array.read_bytes() == b'[\n{"a": 1}\n,{"b":[1,2]}\n]\n'


async def test_log_sink_logs_rendered_text_as_is(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogSink(_spec("log"))
    await sink.open()
    with caplog.at_level(logging.INFO, logger="oort.sink.log"):
        sink.write_nowait("temperature 31 is high")
        with pytest.raises(EncodeError, match="boom"):
            sink.write_nowait(RenderFailure("boom"))
    await sink.aclose()
    assert [r.getMessage() for r in caplog.records if r.name == "oort.sink.log"] == [
        "sink result for rule r: temperature 31 is high"
    ]


async def test_memory_sink_publishes_the_rows_it_reads_back() -> None:
    services = Services()
    sink = MemorySink(_spec("memory", services, topic="out"))
    await sink.open()
    async with services.memory.subscribe("out", 10) as recv:
        await sink.write('{"a": 1}')
        await sink.write('[{"b": 2}, {"b": 3}]')
        with pytest.raises(EncodeError, match="not JSON"):
            await sink.write("<li>a</li>")
        with pytest.raises(EncodeError):
            await sink.write(RenderFailure("boom"))
        assert await recv.receive() == ("out", [{"a": 1}])
        assert await recv.receive() == ("out", [{"b": 2}, {"b": 3}])
        with pytest.raises(trio.WouldBlock):
            recv.receive_nowait()
    await sink.aclose()


async def test_websocket_server_sink_sends_rendered_text_as_a_text_frame(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        services = Services(source_conf=LOCAL)
        services.attach(nursery)
        sink = ServerSink(_spec("websocket", services), WsConf(), "out")
        await sink.open()
        try:
            async with connect(services.data_server.port, "/out") as client:
                while services.data_server.counts()["connections"] < 1:
                    await trio.testing.wait_all_tasks_blocked()
                await sink.write("a;b\n1;2")
                with pytest.raises(EncodeError):
                    await sink.write(RenderFailure("boom"))
                await sink.write({"after": 1})
                assert await client.get_message() == "a;b\n1;2"
                assert await client.get_message() == '{"after":1}'
        finally:
            await sink.aclose()


async def test_websocket_client_sink_sends_rendered_text_as_a_text_frame() -> None:
    with trio.fail_after(10):
        async with engine_services() as (services, nursery):
            peer = Peer()
            await peer.start(nursery)
            sink = ClientSink(_spec("websocket", services), WsConf(addr=f"127.0.0.1:{peer.port}"), "/out")
            await sink.open()
            await sink.write("<b>hot</b>")
            with pytest.raises(EncodeError):
                await sink.write(RenderFailure("boom"))
            await sink.write({"after": 1})
            await peer.wait_for(lambda: len(peer.received) == 2)
            assert peer.received == ["<b>hot</b>", '{"after":1}']
            await sink.aclose()
            await peer.stop()
