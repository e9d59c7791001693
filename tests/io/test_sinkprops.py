"""Common sink properties: parsing and type checks, and the emission -> messages pipeline, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import PlanError
from runtime.io.sinkprops import CacheProps, SinkProps
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
        ({"dataTemplate": "{{.a"}, "'dataTemplate': template: sink:1:5: unclosed action"),
        ({"dataTemplate": 3}, "'dataTemplate' must be a string"),
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


def test_cache_defaults_are_ekuipers_and_cache_keys_stay_with_the_runtime() -> None:
    cache = SinkProps.from_action({}).cache
    assert cache == CacheProps()
    assert (cache.enabled, cache.memory_threshold, cache.max_disk, cache.page_size) == (
        False,
        1024,
        1024000,
        256,
    )
    assert (cache.resend_interval_ms, cache.clean_at_stop, cache.alter_queue, cache.priority) == (
        0,
        False,
        False,
        0,
    )
    assert cache.retry_interval == 0.1  # eKuiper's 100 ms floor when resendInterval is 0
    assert cache.chain_interval == 0
    action = {
        "topic": "t",
        "enableCache": True,
        "memoryCacheThreshold": 8,
        "maxDiskCache": 16,
        "bufferPageSize": 4,
        "resendInterval": "250ms",
        "cleanCacheAtStop": True,
        "resendAlterQueue": True,
        "resendPriority": -1,
        "resendIndicatorField": "resent",
        "resendDestination": "again",
    }
    props = SinkProps.from_action(action)
    assert props.connector_props == {"topic": "t"}
    assert props.cache == CacheProps(True, 8, 16, 4, 250, True, True, -1, "resent", "again")
    assert props.cache.retry_interval == props.cache.chain_interval == 0.25
    assert SinkProps.from_action({"resendInterval": 20}).cache.resend_interval_ms == 20  # an integer is ms


@pytest.mark.parametrize(
    ("action", "messages"),
    [
        (
            {"bufferPageSize": 0, "maxDiskCache": "big", "resendPriority": True},
            [
                "'maxDiskCache' must be a non-negative integer, got 'big'",
                "'bufferPageSize' must be positive, got 0",
                "'resendPriority' must be -1, 0 or 1, got True",
            ],
        ),
        (
            {"memoryCacheThreshold": 100, "bufferPageSize": 256, "maxDiskCache": 1000},
            [
                "'memoryCacheThreshold' (100) must be at least bufferPageSize (256)",
                "'maxDiskCache' (1000) must be a multiple of bufferPageSize (256)",
            ],
        ),
        (
            {"sendSingle": 1, "resendInterval": -5, "cleanCacheAtStop": "no", "resendIndicatorField": 3},
            [
                "'sendSingle' must be a bool",
                "'resendInterval' must be a non-negative number of milliseconds or a duration, got -5",
                "'cleanCacheAtStop' must be a bool",
                "'resendIndicatorField' must be a string",
            ],
        ),
    ],
)
def test_every_wrong_property_is_listed_at_once(action: dict[str, Any], messages: list[str]) -> None:
    with pytest.raises(PlanError) as caught:
        SinkProps.from_action(action)
    text = str(caught.value)
    for message in messages:
        assert message in text
    assert text.count("sink property") == len(messages)
