"""Encoders: json (compact, UTF-8 kept) and delimited (header from the first row), and the format lookup."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from runtime.errors import PlanError
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
    with pytest.raises(TypeError):
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
    with pytest.raises(TypeError):
        encode([1, 2], "delimited")


def test_encoder_is_reusable_and_bound_to_options() -> None:
    enc = encoder("delimited", delimiter="\t", has_header=True)
    assert enc({"a": 1}) == b"a\n1"
    assert enc([{"x": "y"}]) == b"x\ny"
    assert orjson.loads(encoder("json")({"a": [1]})) == {"a": [1]}


def test_unknown_format_lists_known_ones() -> None:
    assert encoder_formats() == ["delimited", "json"]
    with pytest.raises(
        PlanError, match="unknown format 'protobuf' for encoding; known formats: delimited, json"
    ):
        encode({}, "protobuf")
    with pytest.raises(PlanError, match="delimiter"):
        encoder("delimited", delimiter="")
