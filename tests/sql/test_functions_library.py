"""The function library beyond eKuiper's tables: date/time, JSON path, math/conversion extras, and the
registry's shape (eKuiper docs sqls/functions/overview.md), each through parse + compile on real rows."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from runtime.errors import SqlError
from runtime.sql import functions
from runtime.sql.expr import EvalContext, EvalError, compile_expr
from runtime.sql.parser import parse_select

T0 = datetime.datetime(2019, 9, 19, 0, 55, 15, 123000, tzinfo=datetime.UTC)  # a Thursday


def ev(text: str, row: dict[str, Any] | None = None, ctx: EvalContext | None = None) -> Any:
    select = parse_select(f"SELECT {text} AS v FROM s")
    return compile_expr(select.fields[0].expr)(row or {}, ctx or EvalContext(rule_id="r1"))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('format_time(t, "yyyy-MM-dd HH:mm:ss.SSS")', "2019-09-19 00:55:15.123"),
        ('format_time(t, "YY/M/d EEE EEEE MMM MMMM")', "19/9/19 Thu Thursday Sep September"),
        ('format_time(t, "hh:mm a G Z XXX")', "12:55 AM AD +0000 Z"),
        ('format_time(t, "\\\\at HH")', "at 00"),  # \ escapes one letter; unknown letters are copied
        ('format_time(1568854515000, "yyyy-MM-dd T HH:mm:ss")', "2019-09-19 T 00:55:15"),
        ("day_name(t)", "Thursday"),
        ("month_name(t)", "September"),
        ("day_of_week(t)", 4),  # Sunday = 0 (DOC≠CODE)
        ("day_of_year(t)", 262),
        ("hour(t)", 0),
        ("minute(t)", 55),
        ("second(t)", 15),
        ("microsecond(t)", 123000),
        ("last_day(t)", "2019-09-30"),
        ('date_calc(t, "1h30m")', "2019-09-19 02:25:15"),
        ('date_calc(t, "-1h")', "2019-09-18 23:55:15"),
        ('date_diff(t, "2019-09-19 00:55:16.123")', 1_000_000_000),
        ("from_days(1)", "1970-01-01"),
        ("from_unix_time(1)", "1970-01-01 00:00:01"),
        ("to_seconds(t)", 1568854515),
        ('format_time(convert_tz(t, "Asia/Shanghai"), "HH:mm Z")', "08:55 +0800"),
        ('cast("2019-09-19 00:55:15", "datetime") = cast(1568854515000, "datetime")', True),
    ],
)
def test_datetime_functions(expr: str, expected: Any) -> None:
    assert ev(expr, {"t": T0}) == expected


def test_clock_functions_read_the_rule_clock() -> None:
    ctx = EvalContext(ts=1568854515000)  # no clock given: "now" is the event time
    assert ev("now()", ctx=ctx) == "2019-09-19 00:55:15"
    assert ev("now(3)", ctx=ctx) == "2019-09-19 00:55:15.000"
    assert ev("cur_date()", ctx=ctx) == "2019-09-19"
    assert ev("current_time()", ctx=ctx) == "00:55:15"
    assert ev("tstamp()", ctx=ctx) == 1568854515000


DOC = {"store": {"book": [{"t": "a", "p": 8}, {"t": "b", "p": 22}], "key.dot": 1}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.store.book[0].t", "a"),
        ("$.store.book[-1].p", 22),
        ("$.store.book[*].t", ["a", "b"]),
        ("$.store.book[? @.p > 10].t", ["b"]),
        ('$.store.book[? (@.t == "a" || @.p >= 22)].p', [8, 22]),
        ('$.store.book[? @.t != "a" && @.p < 10]', []),
        ('$.store["key.dot"]', 1),
        ("$.store.*", [[{"t": "a", "p": 8}, {"t": "b", "p": 22}], 1]),
    ],
)
def test_json_path_query(path: str, expected: Any) -> None:
    assert ev(f"json_path_query(d, '{path}')", {"d": DOC}) == expected


def test_json_path_variants() -> None:
    row = {"d": DOC, "text": '{"a": [1, 2]}'}
    assert ev("json_path_query(text, '$.a[1]')", row) == 2  # JSON text is parsed first
    assert ev("json_path_query_first(d, '$.store.book[*].p')", row) == 8
    assert ev("json_path_exists(d, '$.store.nope')", row) is False
    assert ev("json_path_exists(d, '$.store.book')", row) is True
    with pytest.raises(EvalError, match="invalid data nil for jsonpath"):
        ev("json_path_query(missing, '$.a')", row)
    with pytest.raises(EvalError, match="unknown key nope"):
        ev("json_path_query(d, '$.nope')", row)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("conv('a', 16, 2)", "1010"),
        ("conv(255, 10, 16)", "FF"),
        ("conv(-17, 10, -16)", "-11"),
        ("conv(10, 1, 2)", None),  # bases out of range
        ("hex2dec('0x10')", 16),
        ("hex2dec('10')", 16),
        ("dec2hex(16)", "0x10"),
        ("cot(1) > 0.64", True),
        ("acos(2)", None),  # NaN => null
        ("format(12332.1234567, 4)", "12332.1235"),
        ('format(12332.1234567, 4, "en_US")', "12,332.1235"),
        ("crc32('hello')", "3610a686"),
        ('decode(encode("hi", "base64"), "base64")', b"hi"),
        ("decompress(compress('abc', 'gzip'), 'gzip')", b"abc"),
        ("decompress(compress('abc', 'flate'), 'flate')", b"abc"),
        ("decompress(compress('abc', 'zlib'), 'zlib')", b"abc"),
        ("regexp_substr('seafood', 'o+')", "oo"),
        ("substring('abc', 5)", ""),
        ('cast("0", "boolean")', False),
        ("array_map('upper', words)", ["A", "B"]),
        ("cardinality(missing)", 0),
        ("object_pick(o, 'a.b')", {"a": {"b": 1}}),
        ("to_json(array_create(1, 'x'))", '[1,"x"]'),
    ],
)
def test_scalar_extras(expr: str, expected: Any) -> None:
    assert ev(expr, {"o": {"a": {"b": 1, "c": 2}}, "words": ["a", "b"]}) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("cot(0)", "out-of-range error"),
        ("encode('a', 'hex')", "unsupported encode type hex"),
        ("sequence(1, 5, 0)", "invalid step"),
        ("array_map('nope', words)", "should be a scalar function"),
    ],
)
def test_runtime_errors_name_the_function(expr: str, message: str) -> None:
    with pytest.raises(EvalError, match=message) as info:
        ev(expr, {"words": ["a"]})
    assert info.value.message.startswith("call func ")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT nope(a) FROM s", "function nope not found"),
        ("SELECT atan2(1) FROM s", "validate function atan2 error: Expect 2 arguments but found 1."),
        ('SELECT cast(a, "int") FROM s', "Expect one of bigint"),
        ("SELECT mqtt(qos) FROM s", "Expect meta reference type"),
        ("SELECT concat(a, 1) FROM s", "Expect string type for parameter 2"),
    ],
)
def test_parse_time_validation(sql: str, message: str) -> None:
    with pytest.raises(SqlError, match=message):
        parse_select(sql)


def test_registry_covers_every_family() -> None:
    names = set(functions.function_names())
    for name in ("acos", "regexp_substr", "crc32", "json_path_query", "array_union", "object_pick",
                 "format_time", "lag", "acc_avg", "mqtt", "count", "tumblingwindow"):  # fmt: skip
        assert name in names
    assert len(names) >= 175
    lag = functions.lookup("LAG")
    assert lag is not None and lag.kind == "analytic" and lag.compile is not None
