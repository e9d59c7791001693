"""Stream decoders (``make_decoder``): json, binary and delimited, text and binary payloads, strict validation
against the schema with eKuiper's messages, and the formats a stream cannot use."""

from __future__ import annotations

import datetime

import pytest

from runtime.errors import PlanError
from runtime.formats.decode import DecodeError, make_decoder
from runtime.sql.ast import ArrayType, FieldDef, FieldType, SimpleType, StreamDef, StreamOptions, StructType


def stream(
    fmt: str = "json", *fields: tuple[str, FieldType], strict: bool = False, delimiter: str = ""
) -> StreamDef:
    return StreamDef(
        "s",
        "stream",
        tuple(FieldDef(name, type_) for name, type_ in fields),
        StreamOptions(format=fmt, strict_validation=strict, delimiter=delimiter),
    )


BIGINT, FLOAT, STRING = SimpleType("bigint"), SimpleType("float"), SimpleType("string")
BOOLEAN, DATETIME, BYTEA = SimpleType("boolean"), SimpleType("datetime"), SimpleType("bytea")


def decode_error(definition: StreamDef, payload: bytes | str) -> str:
    with pytest.raises(DecodeError) as info:
        make_decoder(definition)(payload)
    return info.value.message


@pytest.mark.parametrize("payload", ['{"a": 1, "b": "x"}', b'{"a": 1, "b": "x"}'])
def test_json_object_is_one_row_from_text_or_bytes(payload: bytes | str) -> None:
    assert make_decoder(stream())(payload) == [{"a": 1, "b": "x"}]


def test_json_array_of_objects_is_one_row_each() -> None:
    assert make_decoder(stream())('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("42", "expected a JSON object or an array of objects, got a number"),
        ('"x"', "expected a JSON object or an array of objects, got a string"),
        ("true", "expected a JSON object or an array of objects, got a boolean"),
        ("null", "expected a JSON object or an array of objects, got null"),
        ("[]", "expected a JSON object or an array of objects, got an empty array"),
        (
            '[{"a": 1}, 2]',
            "expected a JSON object or an array of objects, got an array with a non-object element",
        ),
    ],
)
def test_json_non_objects_are_errors(payload: str, message: str) -> None:
    assert decode_error(stream(), payload) == message


@pytest.mark.parametrize("payload", ["{bad", b"", b'{"a": "\xff"}'])
def test_invalid_json_and_invalid_utf8_are_errors(payload: bytes | str) -> None:
    assert decode_error(stream(), payload).startswith("invalid JSON: ")


def test_invalid_utf8_is_named() -> None:
    assert "utf-8" in decode_error(stream(), b'{"a": "\xff"}').lower()


def test_schema_without_strict_validation_leaves_values_alone() -> None:
    decode = make_decoder(stream("json", ("size", BIGINT), ("color", STRING)))
    assert decode('{"size": "red", "color": 3, "extra": true}') == [
        {"size": "red", "color": 3, "extra": True}
    ]


def test_strict_validation_converts_to_declared_types() -> None:
    definition = stream(
        "json",
        ("size", BIGINT),
        ("ratio", FLOAT),
        ("name", STRING),
        ("on", BOOLEAN),
        ("at", DATETIME),
        ("raw", BYTEA),
        ("tags", ArrayType(BIGINT)),
        ("pos", StructType((FieldDef("x", FLOAT),))),
        strict=True,
    )
    (row,) = make_decoder(definition)(
        '{"size": 3.0, "ratio": 2, "name": "n", "on": false, "at": 1700000000000, "raw": "aGk=",'
        ' "tags": [1, 2.0, null], "pos": {"x": 1, "y": "kept"}, "missing_from_schema": 1, "gone": null}'
    )
    assert row == {
        "size": 3,
        "ratio": 2.0,
        "name": "n",
        "on": False,
        "at": datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC),
        "raw": b"hi",
        "tags": [1, 2, None],
        "pos": {"x": 1.0, "y": "kept"},
        "missing_from_schema": 1,
        "gone": None,
    }
    assert type(row["size"]) is int and type(row["ratio"]) is float


def test_strict_datetime_accepts_text() -> None:
    (row,) = make_decoder(stream("json", ("at", DATETIME), strict=True))('{"at": "2024-01-02T03:04:05Z"}')
    assert row["at"] == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


P = "error in preprocessor: "


@pytest.mark.parametrize(
    ("field_type", "value", "message"),
    [
        (BIGINT, '"red"', f"{P}field size type mismatch: cannot convert string(red) to int64"),
        (BIGINT, "1.5", f"{P}field size type mismatch: cannot convert float64(1.5) to int64"),
        (BIGINT, "true", f"{P}field size type mismatch: cannot convert bool(true) to int64"),
        (FLOAT, '"1.5"', f"{P}field size type mismatch: cannot convert string(1.5) to float64"),
        (STRING, "3", f"{P}field size type mismatch: cannot convert int64(3) to string"),
        (BOOLEAN, '"true"', f"{P}field size type mismatch: cannot convert string(true) to bool"),
        (DATETIME, '"soon"', f"{P}field size type mismatch: cannot convert string(soon) to datetime"),
        (BYTEA, '"not base64!"', f"{P}field size type mismatch: cannot convert string(not base64!) to bytea"),
        (BYTEA, "1", f"{P}field size type mismatch: cannot convert int64(1) to bytea"),
        (ArrayType(BIGINT), "1", f"{P}field size type mismatch: expect array but found int64(1)"),
        (
            ArrayType(BIGINT),
            '["a"]',
            f"{P}field size type mismatch: cannot convert string(a) to int64",
        ),
        (
            StructType((FieldDef("w", BIGINT),)),
            '"x"',
            f"{P}field size type mismatch: expect map but found string(x)",
        ),
        (
            StructType((FieldDef("w", BIGINT),)),
            '{"w": "x"}',
            f"{P}field size type mismatch: field w type mismatch: cannot convert string(x) to int64",
        ),
    ],
)
def test_strict_validation_mismatches(field_type: FieldType, value: str, message: str) -> None:
    definition = stream("json", ("size", field_type), strict=True)
    assert decode_error(definition, f'{{"size": {value}}}') == message


def test_strict_validation_applies_to_every_row_of_an_array() -> None:
    definition = stream("json", ("size", BIGINT), strict=True)
    assert decode_error(definition, '[{"size": 1}, {"size": "red"}]').endswith(
        "cannot convert string(red) to int64"
    )


@pytest.mark.parametrize(("payload", "expected"), [(b"\x00\xffraw", b"\x00\xffraw"), ("text", b"text")])
def test_binary_schemaless_is_self(payload: bytes | str, expected: bytes) -> None:
    assert make_decoder(stream("binary"))(payload) == [{"self": expected}]


def test_binary_into_the_single_bytea_field() -> None:
    assert make_decoder(stream("BINARY", ("image", BYTEA)))(b"\x01") == [{"image": b"\x01"}]


@pytest.mark.parametrize(
    "fields", [(("a", BIGINT),), (("a", BYTEA), ("b", BYTEA))], ids=["not-bytea", "two-fields"]
)
def test_binary_needs_one_bytea_field(fields: tuple[tuple[str, FieldType], ...]) -> None:
    with pytest.raises(PlanError, match="FORMAT binary needs no schema or exactly one BYTEA field"):
        make_decoder(stream("binary", *fields))


@pytest.mark.parametrize("payload", ["1,x,2.5\n", b"1,x,2.5"])
def test_delimited_schemaless_gives_col_names(payload: bytes | str) -> None:
    assert make_decoder(stream("delimited"))(payload) == [{"col0": "1", "col1": "x", "col2": "2.5"}]


def test_delimited_uses_delimiter_and_schema_names() -> None:
    decode = make_decoder(stream("delimited", ("a", BIGINT), ("b", STRING), delimiter=" "))
    assert decode("1 x") == [{"a": "1", "b": "x"}]
    assert decode("1") == [{"a": "1"}]


def test_delimited_strict_converts_cells() -> None:
    decode = make_decoder(
        stream(
            "delimited", ("a", BIGINT), ("f", FLOAT), ("b", BOOLEAN), ("s", STRING), ("r", BYTEA), strict=True
        )
    )
    assert decode("7|1.5|true|x|y".replace("|", ",")) == [{"a": 7, "f": 1.5, "b": True, "s": "x", "r": b"y"}]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("red,1", f"{P}field a type mismatch: cannot convert string(red) to int64"),
        ("1,x", f"{P}field f type mismatch: cannot convert string(x) to float64"),
        ("1,2,yes", f"{P}field b type mismatch: cannot convert string(yes) to bool"),
        ("1,2,true,4", "delimited: 4 values for the 3 fields of stream s"),
        (b"\xff", "invalid UTF-8 at byte 0: invalid start byte"),
    ],
)
def test_delimited_errors(payload: bytes | str, message: str) -> None:
    definition = stream("delimited", ("a", BIGINT), ("f", FLOAT), ("b", BOOLEAN), strict=True)
    assert decode_error(definition, payload) == message


def test_delimited_array_field_cannot_come_from_a_cell() -> None:
    definition = stream("delimited", ("a", ArrayType(BIGINT)), strict=True)
    assert decode_error(definition, "1") == f"{P}field a type mismatch: cannot convert string(1) to array"


@pytest.mark.parametrize("fmt", ["protobuf", "custom", "urlencoded"])
def test_formats_without_decoder_are_plan_errors(fmt: str) -> None:
    with pytest.raises(
        PlanError, match=f"stream s: FORMAT '{fmt}' cannot be decoded; supported: binary, delimited, json"
    ):
        make_decoder(stream(fmt))


def test_decoders_are_reused_per_stream() -> None:
    # The per-frame function is the module-level one when nothing depends on the stream: no closure per stream.
    assert make_decoder(stream()) is make_decoder(stream("JSON", ("a", BIGINT)))


def test_row_check_converts_only_the_fields_read() -> None:
    from runtime.formats.decode import checked_event, row_check
    from runtime.model import ErrorItem, Event

    definition = stream("json", ("color", STRING), ("size", BIGINT), strict=True)
    assert row_check(stream("json", ("size", BIGINT))) is None  # no STRICT_VALIDATION
    assert row_check(definition, frozenset({"other"})) is None  # nothing the rule reads is declared
    check = row_check(definition, frozenset({"size"}))
    assert check is not None
    assert check({"color": 7, "size": 2.0}) == {"color": 7, "size": 2}  # color is not read: left as is
    event = checked_event(check, {"size": "red"}, 5, {"topic": "t"})
    assert isinstance(event, ErrorItem)
    assert event.message == f"{P}field size type mismatch: cannot convert string(red) to int64"
    full = row_check(definition, describe=lambda value: f"int({value})")
    assert full is not None
    item = checked_event(full, {"color": 7}, 5, None)
    assert isinstance(item, ErrorItem) and item.message.endswith("cannot convert int(7) to string")
    ok = checked_event(full, {"color": "red", "size": 3}, 5, None)
    assert isinstance(ok, Event) and (ok.data, ok.ts) == ({"color": "red", "size": 3}, 5)
