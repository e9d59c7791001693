"""The file sink: every fileType read back and parsed, prompt flushing, appending across runs, bad props."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from runtime.clock import Clock
from runtime.errors import PlanError, SinkError
from runtime.io.contract import IoContext, SinkSpec
from runtime.io.file import FileSink
from runtime.io.services import Services


def _sink(props: dict[str, Any]) -> FileSink:
    ctx = IoContext(rule_id="r", clock=Clock(), services=Services(), logger=logging.getLogger("t"))
    return FileSink(SinkSpec(type="file", index=0, props=props, ctx=ctx))


async def test_lines_are_flushed_per_write_and_parse(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "out.jsonl"
    sink = _sink({"path": str(path)})
    await sink.open()
    await sink.write([{"a": 1, "name": "déjà"}, {"a": 2}])
    # read before aclose: the line must already be on disk
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == [
        [{"a": 1, "name": "déjà"}, {"a": 2}]
    ]
    await sink.write({"a": 3})
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()][-1] == {"a": 3}
    await sink.aclose()
    await sink.aclose()  # idempotent
    assert "déjà".encode() in path.read_bytes()  # UTF-8 kept, not \\u-escaped


async def test_lines_append_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    for n in range(2):
        sink = _sink({"path": str(path), "fileType": "lines"})
        await sink.open()
        await sink.write({"run": n})
        await sink.aclose()
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == [{"run": 0}, {"run": 1}]


async def test_a_line_cut_by_a_crash_is_dropped_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"run":0}\n{"run":1}\n{"ru')  # kill -9 inside the third write
    sink = _sink({"path": str(path), "fileType": "lines"})
    await sink.open()
    await sink.write({"run": 2})
    await sink.aclose()
    assert path.read_bytes() == b'{"run":0}\n{"run":1}\n{"run":2}\n'
    path.write_bytes(b'{"cut')  # the only line, cut
    sink = _sink({"path": str(path), "fileType": "lines"})
    await sink.open()
    await sink.write({"run": 3})
    await sink.aclose()
    assert path.read_bytes() == b'{"run":3}\n'


async def test_a_foreign_file_without_a_last_newline_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    for content in (b"hello", b"a" * (8 * 1024 * 1024)):  # not JSON, no newline: not ours
        path.write_bytes(content)
        sink = _sink({"path": str(path), "fileType": "lines"})
        with pytest.raises(SinkError, match="does not end with a newline and is no output of this sink"):
            await sink.open()
        assert path.read_bytes() == content


async def test_json_file_is_one_array(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    sink = _sink({"path": str(path), "fileType": "json"})
    await sink.open()
    await sink.write({"a": 1})
    # flushed before close: the text so far is the array without its closing bracket
    assert orjson.loads(path.read_bytes() + b"]") == [{"a": 1}]
    await sink.write([{"a": 2}, {"a": 3}])
    await sink.aclose()
    assert orjson.loads(path.read_bytes()) == [{"a": 1}, [{"a": 2}, {"a": 3}]]


async def test_json_file_without_messages_is_an_empty_array(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    sink = _sink({"path": str(path), "fileType": "json"})
    await sink.open()
    await sink.aclose()
    assert orjson.loads(path.read_bytes()) == []


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (b'[{"a":0}]\n', [{"a": 0}, {"a": 1}]),  # closed by a previous run
        (b'[{"a":0}', [{"a": 0}, {"a": 1}]),  # a previous run died before aclose
        (b"[]\n", [{"a": 1}]),
        (b"", [{"a": 1}]),
        # Killed (kill -9) with the last element complete: one ending in "]" is not mistaken for the close.
        (b'[[{"v":1}],[{"v":2}]', [[{"v": 1}], [{"v": 2}], {"a": 1}]),
        (b'[\n[{"v":1}]\n,[{"v":2}]', [[{"v": 1}], [{"v": 2}], {"a": 1}]),
        # Killed mid-write: the cut element (or a lone separator) is dropped, the rest kept.
        (b'[\n{"a":0}\n,{"a":', [{"a": 0}, {"a": 1}]),
        (b'[\n{"a":0}\n,', [{"a": 0}, {"a": 1}]),
        (b"[\n", [{"a": 1}]),
        (b"[", [{"a": 1}]),
        # Closed by a previous run in the one-element-per-line layout.
        (b'[\n{"a":0}\n]\n', [{"a": 0}, {"a": 1}]),
        (b"[\n]\n", [{"a": 1}]),
    ],
)
async def test_json_file_continues_an_existing_array(
    tmp_path: Path, existing: bytes, expected: list[Any]
) -> None:
    path = tmp_path / "out.json"
    path.write_bytes(existing)
    sink = _sink({"path": str(path), "fileType": "json"})
    await sink.open()
    await sink.write({"a": 1})
    await sink.aclose()
    assert orjson.loads(path.read_bytes()) == expected


async def test_json_file_cut_inside_a_one_line_array_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_bytes(b'[{"a":0},{"a":')
    sink = _sink({"path": str(path), "fileType": "json"})
    with pytest.raises(SinkError, match="not a complete JSON array"):
        await sink.open()
    await sink.aclose()
    assert path.read_bytes() == b'[{"a":0},{"a":'


async def test_json_file_refuses_to_extend_something_else(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_bytes(b'{"not": "an array"}')
    sink = _sink({"path": str(path), "fileType": "json"})
    with pytest.raises(SinkError, match="not a JSON array"):
        await sink.open()
    await sink.aclose()
    assert path.read_bytes() == b'{"not": "an array"}'


async def test_csv_with_header_once_and_fixed_columns(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = _sink({"path": str(path), "fileType": "csv", "hasHeader": True, "delimiter": ";"})
    await sink.open()
    await sink.write([{"id": "a", "t": 21.0, "ok": True}, {"id": "b;c", "t": 2.5, "ok": False}])
    assert path.read_text() == 'id;t;ok\na;21;true\n"b;c";2.5;false\n'
    await sink.write({"t": 3, "id": "d"})  # columns stay those of the first row
    await sink.aclose()
    assert path.read_text().splitlines() == ["id;t;ok", "a;21;true", '"b;c";2.5;false', "d;3;"]
    # a second run appends rows without a second header
    sink = _sink({"path": str(path), "fileType": "csv", "hasHeader": True, "delimiter": ";"})
    await sink.open()
    await sink.write({"id": "e", "t": 1, "ok": True})
    await sink.aclose()
    assert path.read_text().splitlines()[-2:] == ["d;3;", "e;1;true"]


async def test_csv_without_header(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = _sink({"path": str(path), "fileType": "csv"})
    await sink.open()
    await sink.write({"a": 1, "b": "x"})
    await sink.aclose()
    assert path.read_text() == "1,x\n"


async def test_lines_with_delimited_format(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    sink = _sink({"path": str(path), "format": "delimited", "hasHeader": True})
    await sink.open()
    await sink.write([{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    await sink.write([])
    await sink.aclose()
    assert path.read_text() == "a,b\n1,2\n3,4\n"


async def test_unencodable_value_is_a_sink_error(tmp_path: Path) -> None:
    sink = _sink({"path": str(tmp_path / "out.jsonl")})
    await sink.open()
    with pytest.raises(SinkError):
        await sink.write({"a": object()})
    await sink.aclose()


async def test_write_before_open_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="before open"):
        await _sink({"path": str(tmp_path / "x")}).write({"a": 1})


async def test_unopenable_path_is_a_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    sink = _sink({"path": str(blocker / "child" / "out.jsonl")})  # a parent that is a file
    with pytest.raises(SinkError):
        await sink.open()


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({}, "'path' is required"),
        ({"path": ""}, "'path' is required"),
        ({"path": "x", "fileType": "parquet"}, "fileType 'parquet' is invalid"),
        ({"path": "x", "fileType": "json", "format": "delimited"}, "needs format 'json'"),
        ({"path": "x", "hasHeader": "yes"}, "'hasHeader' must be a bool"),
        ({"path": "x", "delimiter": 1}, "'delimiter' must be a str"),
        ({"path": "x", "format": "xml"}, "unknown format 'xml'"),
    ],
)
async def test_bad_properties_are_plan_errors(props: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        _sink(props)
