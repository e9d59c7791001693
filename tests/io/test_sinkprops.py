"""Common sink properties: parsing and type checks, and the emission -> messages pipeline, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import PlanError
from runtime.io.sinkprops import SinkProps
from runtime.model import Row

ROWS: list[Row] = [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]


def test_defaults() -> None:
    props = SinkProps.from_action({})
    assert props == SinkProps()
    assert (props.send_single, props.omit_if_empty, props.format, props.buffer_length) == (
        False,
        False,
        "json",
        1024,
    )
    assert (props.concurrency, props.batch_size, props.linger_interval) == (1, 0, 0)


def test_parsing_and_connector_props() -> None:
    action = {
        "sendSingle": True,
        "omitIfEmpty": True,
        "fields": ["a"],
        "excludeFields": ["b"],
        "dataField": "d",
        "format": "delimited",
        "delimiter": ";",
        "hasHeader": True,
        "bufferLength": 8,
        "concurrency": 2,
        "batchSize": 10,
        "lingerInterval": 500,
        "runAsync": True,
        "path": "/tmp/x",
        "topic": "t",
    }
    props = SinkProps.from_action(action)
    assert props.send_single and props.omit_if_empty
    assert props.fields == ("a",) and props.exclude_fields == ("b",) and props.data_field == "d"
    assert (
        props.format,
        props.buffer_length,
        props.concurrency,
        props.batch_size,
        props.linger_interval,
    ) == (
        "delimited",
        8,
        2,
        10,
        500,
    )
    assert props.connector_props == {
        "format": "delimited",
        "delimiter": ";",
        "hasHeader": True,
        "path": "/tmp/x",
        "topic": "t",
    }


def test_table_data_field_is_the_legacy_alias() -> None:
    assert SinkProps.from_action({"tableDataField": "x"}).data_field == "x"


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"sendSingle": "true"}, "'sendSingle' must be a bool"),
        ({"omitIfEmpty": 1}, "'omitIfEmpty' must be a bool"),
        ({"fields": "a"}, "'fields' must be a list of strings"),
        ({"excludeFields": ["a", 1]}, "'excludeFields' must be a list of strings"),
        ({"dataField": 3}, "'dataField' must be a string"),
        ({"format": None}, "'format' must be a string"),
        ({"bufferLength": "1"}, "'bufferLength' must be a non-negative integer"),
        ({"concurrency": True}, "'concurrency' must be a non-negative integer"),
        ({"batchSize": -1}, "'batchSize' must be a non-negative integer"),
        ({"lingerInterval": 1.5}, "'lingerInterval' must be a non-negative integer"),
        ({"dataTemplate": "{{.a}}"}, "'dataTemplate' is not supported"),
    ],
)
def test_bad_types_are_plan_errors(action: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        SinkProps.from_action(action)


@pytest.mark.parametrize(
    ("action", "emission", "expected"),
    [
        ({}, ROWS, [ROWS]),
        ({"sendSingle": True}, ROWS, ROWS),
        ({}, [], [[]]),
        ({"omitIfEmpty": True}, [], []),
        ({"sendSingle": True}, [], []),
        ({"fields": ["a", "c", "zz"]}, ROWS, [[{"a": 1, "c": 3}, {"a": 4, "c": 6}]]),
        ({"excludeFields": ["a"], "sendSingle": True}, ROWS, [{"b": 2, "c": 3}, {"b": 5, "c": 6}]),
        ({"fields": ["zz"], "sendSingle": True, "omitIfEmpty": True}, ROWS, []),
        ({"fields": ["zz"], "sendSingle": True}, ROWS, [{}, {}]),
        ({"dataField": "d"}, [{"d": {"x": 1}, "e": 0}], [[{"x": 1}]]),
        ({"dataField": "d"}, [{"d": [{"x": 1}, {"x": 2}]}], [[{"x": 1}, {"x": 2}]]),
        ({"dataField": "d", "sendSingle": True}, [{"d": [{"x": 1}, {"x": 2}]}], [{"x": 1}, {"x": 2}]),
        ({"dataField": "d", "fields": ["x"]}, [{"d": [{"x": 1, "y": 2}]}], [[{"x": 1}]]),
        ({"dataField": "d", "omitIfEmpty": True}, [{"e": 1}], []),
        ({"dataField": "d"}, [{"d": 5}], [[]]),
    ],
)
def test_messages(action: dict[str, Any], emission: list[Row], expected: list[Any]) -> None:
    assert SinkProps.from_action(action).messages(emission) == expected


def test_messages_do_not_mutate_the_shared_emission() -> None:
    emission = [{"a": 1, "b": 2}]
    SinkProps.from_action({"excludeFields": ["a"]}).messages(emission)
    SinkProps.from_action({"fields": ["b"]}).messages(emission)
    assert emission == [{"a": 1, "b": 2}]
