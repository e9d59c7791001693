"""Encoders: json (compact, UTF-8 kept) and delimited (header from the first row), and the format lookup."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from runtime.errors import EncodeError, PlanError
from runtime.formats import encode, encoder, encoder_formats


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"a": 1, "b": "x"}, b'{"a":1,"b":"x"}'),
        ([{"a": 1.5}, {"a": None}], b'[{"a":1.5},{"a":null}]'),
        ({"s": "温度 déjà"}, '{"s":"温度 déjà"}'.encode()),
        ({"n": math.nan}, b'{"n":null}'),
        ({"raw": b"\x00\x01hi"}, b'{"raw":"AAFoaQ=="}'),
        ({"nested": {"l": [1, True]}}, b'{"nested":{"l":[1,true]}}'),
    ],
)
def test_json(data: Any, expected: bytes) -> None:
    assert encode(data, "json") == expected
    assert encode(data, "JSON") == expected


def test_json_rejects_unencodable_values() -> None:
    with pytest.raises(EncodeError, match="json format cannot encode"):
        encode({"a": object()}, "json")


@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        ({"a": 1, "b": "x"}, {}, "1,x"),
        ({"a": 1, "b": "x"}, {"has_header": True}, "a,b\n1,x"),
        ([{"a": 1, "b": 2}, {"b": 4, "a": 3}], {"has_header": True}, "a,b\n1,2\n3,4"),
        ([{"a": 1, "b": 2}, {"a": 3}], {}, "1,2\n3,"),
        ({"f": 21.0, "g": 0.25, "t": True, "n": None}, {"delimiter": "|"}, "21|0.25|true|"),
        ({"s": 'say "hi", ok'}, {}, '"say ""hi"", ok"'),
        ({"o": {"k": [1]}}, {"delimiter": ";"}, '"{""k"":[1]}"'),  # nested values as quoted JSON
        ([], {"has_header": True}, ""),
    ],
)
def test_delimited(data: Any, kwargs: dict[str, Any], expected: str) -> None:
    assert encode(data, "delimited", **kwargs).decode() == expected


def test_delimited_needs_rows() -> None:
    with pytest.raises(EncodeError, match="needs a row or a list of rows"):
        encode([1, 2], "delimited")


def test_encoder_is_reusable_and_bound_to_options() -> None:
    enc = encoder("delimited", delimiter="\t", has_header=True)
    assert enc({"a": 1}) == b"a\n1"
    assert enc([{"x": "y"}]) == b"x\ny"
    assert orjson.loads(encoder("json")({"a": [1]})) == {"a": [1]}


def test_unknown_format_lists_known_ones() -> None:
    assert encoder_formats() == ["binary", "delimited", "json"]
    with pytest.raises(
        PlanError, match="unknown format 'protobuf' for encoding; known formats: binary, delimited, json"
    ):
        encode({}, "protobuf")
    with pytest.raises(PlanError, match="delimiter"):
        encoder("delimited", delimiter="")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"self": b"\x00\xff"}, b"\x00\xff"),
        ({"self": bytearray(b"ab"), "other": 1}, b"ab"),
        ([{"self": b"one row"}], b"one row"),
        ({"self": "AAH/"}, b"\x00\x01\xff"),  # text is base64, as eKuiper reads a bytea from JSON
        ({"self": b""}, b""),
    ],
)
def test_binary(data: Any, expected: bytes) -> None:
    assert encode(data, "binary") == expected
    assert encode(data, "BINARY") == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"other": b"x"}, "field self not exist"),
        ([{"self": b"a"}, {"self": b"b"}], "got 2 rows: set the sink's sendSingle to true"),
        ([], "got 0 rows"),
        ({"self": "not base64!"}, "not base64"),
        ({"self": 12}, "cannot convert int"),
        ("bare text", "needs a row"),
    ],
)
def test_binary_rejects_what_has_no_bytes(data: Any, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode(data, "binary")
