"""Stream/table DDL (eKuiper docs sqls/streams.md): every statement form, eKuiper's error messages, DESCRIBE
and REST views."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import SqlError
from runtime.sql.ast import (
    ArrayType,
    DescribeStmt,
    DropStmt,
    ExplainStmt,
    FieldDef,
    ShowStmt,
    SimpleType,
    StreamDef,
    StreamOptions,
    StructType,
)
from runtime.sql.ddl import describe_text, stream_json, stream_schema
from runtime.sql.parser import parse_ddl, parse_statements


def _stream(sql: str) -> StreamDef:
    stmt = parse_ddl(sql)
    assert isinstance(stmt, StreamDef)
    return stmt


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DROP STREAM demo", DropStmt("stream", "demo")),
        ("drop table `t1`;", DropStmt("table", "t1")),
        ("DESCRIBE STREAM demo", DescribeStmt("stream", "demo")),
        ("describe TABLE demo", DescribeStmt("table", "demo")),
        ("EXPLAIN STREAM demo", ExplainStmt("stream", "demo")),
        ("EXPLAIN TABLE demo", ExplainStmt("table", "demo")),
        ("SHOW STREAMS", ShowStmt("stream")),
        ("show tables;", ShowStmt("table")),
    ],
)
def test_simple_statements(sql: str, expected: Any) -> None:
    assert parse_ddl(sql) == expected


def test_create_stream_with_every_type() -> None:
    stmt = _stream(
        """CREATE STREAM demo (
            USERID BIGINT DEFAULT -23, price float DEFAULT 1, name STRING DEFAULT 'foo bar', ok BOOLEAN DEFAULT TRUE,
            born DATETIME, pic BYTEA, tags ARRAY(STRING), m ARRAY(ARRAY(BIGINT)),
            addr STRUCT(STREET_NAME STRING, NUMBER BIGINT), l ARRAY(STRUCT(a string,)),
        ) WITH (DATASOURCE="users", FORMAT="JSON", KEY="USERID", CONF_KEY="srv1", type="MQTT",
                TIMESTAMP="USERID", TIMESTAMP_FORMAT="yyyy-MM-dd''T''HH:mm:ssX'", SHARED="true",
                STRICT_VALIDATION='FAlse', EXTRA="{\\"a\\":1}", VERSION="1.0", Delimiter=" ",);"""
    )
    assert stmt.kind == "stream" and stmt.name == "demo"
    assert stmt.fields == (
        FieldDef("USERID", SimpleType("bigint"), -23),
        FieldDef("price", SimpleType("float"), 1.0),
        FieldDef("name", SimpleType("string"), "foo bar"),
        FieldDef("ok", SimpleType("boolean"), True),
        FieldDef("born", SimpleType("datetime")),
        FieldDef("pic", SimpleType("bytea")),
        FieldDef("tags", ArrayType(SimpleType("string"))),
        FieldDef("m", ArrayType(ArrayType(SimpleType("bigint")))),
        FieldDef(
            "addr",
            StructType(
                (FieldDef("STREET_NAME", SimpleType("string")), FieldDef("NUMBER", SimpleType("bigint")))
            ),
        ),
        FieldDef("l", ArrayType(StructType((FieldDef("a", SimpleType("string")),)))),
    )
    assert stmt.options == StreamOptions(
        datasource="users",
        format="JSON",
        key="USERID",
        conf_key="srv1",
        type="MQTT",
        timestamp="USERID",
        timestamp_format="yyyy-MM-dd''T''HH:mm:ssX'",
        shared=True,
        strict_validation=False,
        extra='{"a":1}',
        version="1.0",
        delimiter=" ",
    )
    assert stmt.statement.startswith("CREATE STREAM demo (") and stmt.statement.endswith(",)")


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE STREAM demo () WITH ()",
        "CREATE STREAM demo() WITH (DATASOURCE='x')",
        'create stream demo (\n\t\n) with (datasource="x", format="delimited", delimiter=" ")',
        'CREATE TABLE demo () WITH (TYPE="memory", KIND="lookup", KEY="id", RETAIN_SIZE="3")',
        "CREATE STREAM `demo-1` (`select` bigint) WITH (SHARED=TRUE, TEMP=false)",
        'CREATE STREAM demo (image BYTEA) WITH (FORMAT="BINARY")',
    ],
)
def test_valid_create_forms(sql: str) -> None:
    assert isinstance(parse_ddl(sql), StreamDef)


def test_schemaless_and_table_defaults() -> None:
    stmt = _stream('CREATE TABLE t () WITH (DATASOURCE="a.json")')
    assert stmt.kind == "table" and stmt.schemaless
    assert stmt.options.format == "json" and stmt.options.type == "" and stmt.options.retain_size == 0


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            'CREATE STREAM demo (NAME integer) WITH (DATASOURCE="users")',
            'found "integer", expect valid stream field types(BIGINT | FLOAT | STRING | DATETIME | BOOLEAN | BYTEA '
            "| ARRAY | STRUCT).",
        ),
        (
            'CREATE STREAM demo (NAME string) WITH (sources="users")',
            'found "SOURCES", unknown option keys(DATASOURCE|FORMAT|KEY|CONF_KEY|SHARED|STRICT_VALIDATION|TYPE|'
            "TIMESTAMP|TIMESTAMP_FORMAT|RETAIN_SIZE|SCHEMAID|EXTRA|VERSION|TEMP|KIND|DELIMITER).",
        ),
        (
            'CREATE STREAM demo (NAME string) WITH (STRICT_VALIDATION="true1")',
            'found "true1", expect TRUE/FALSE value in STRICT_VALIDATION option.',
        ),
        (
            'CREATE STREAM demo () WITH (SHARED="yes")',
            'found "yes", expect TRUE/FALSE value in SHARED option.',
        ),
        ('CREATE STREAM demo () WITH (EXTRA="USERID")', "invalid extra option, expect JSON string"),
        ('CREATE STREAM demo () WITH (FORMAT="xyz")', "option 'format=xyz' is invalid"),
        ('CREATE TABLE demo () WITH (FORMAT="binary")', "'binary' format is not supported for table"),
        (
            "CREATE STREAM demo (a BYTEA, b BYTEA) WITH (FORMAT='binary')",
            "'binary' format stream can have only one field",
        ),
        (
            'CREATE TABLE demo () WITH (TYPE="memory", KIND="lookup")',
            'Option "key" is required for memory lookup table.',
        ),
        (
            'CREATE TABLE demo () WITH (RETAIN_SIZE="many")',
            'found "many", expect number value in RETAIN_SIZE option.',
        ),
        (
            'CREATE STREAM demo (PICTURE BYTEA DEFAULT "foo") WITH ()',
            "DEFAULT clause is not supported for bytea",
        ),
        (
            'CREATE STREAM demo (n ARRAY(STRING) DEFAULT "x") WITH ()',
            "DEFAULT clause is not supported for *ast.ArrayType",
        ),
        ('CREATE STREAM demo (USERID BIGINT DEFAULT "bar",) WITH ()', "cannot convert string(bar) to int64"),
        (
            "CREATE STREAM `x.y` () WITH ()",
            "id 'x.y' contains invalid characters: only alphanumeric, hyphens and underscores are allowed",
        ),
    ],
)
def test_semantic_errors_use_ekuiper_messages(sql: str, message: str) -> None:
    with pytest.raises(SqlError) as info:
        parse_ddl(sql)
    assert info.value.message == message


@pytest.mark.parametrize(
    "sql",
    [
        'CREATE STREAM demo (NAME string)) WITH (DATASOURCE="users")',
        'CREATE STREAM demo (NAME string) WITHs (DATASOURCE="users")',
        'CREATE STREAM demo ((NAME string) WITH (DATASOURCE="users")',
        "CREATE STREAM demo (USERID BIGINT,) WITH ());",
        'CREATE STREAM demo (USERID BIGINT,) WITH DATASOURCE="users")',
        "CREATE STREAM demo (a bigint) WITH (DATASOURCE=users)",
        "CREATE STREAM demo (a bigint)",
        "DROP demo",
    ],
)
def test_syntax_errors(sql: str) -> None:
    with pytest.raises(SqlError) as info:
        parse_ddl(sql)
    assert info.value.line == 1 and info.value.column > 0
    assert info.value.message.endswith(f"at line 1, column {info.value.column}")


def test_parse_statements_file() -> None:
    text = """-- streams of the demo
CREATE STREAM a () WITH (DATASOURCE="a");
/* the table */
CREATE TABLE b (id bigint) WITH (TYPE="file", DATASOURCE="b.json")
;DROP STREAM c;
"""
    stmts = parse_statements(text)
    assert [type(s).__name__ for s in stmts] == ["StreamDef", "StreamDef", "DropStmt"]
    assert isinstance(stmts[1], StreamDef)
    assert stmts[1].statement == 'CREATE TABLE b (id bigint) WITH (TYPE="file", DATASOURCE="b.json")'


def test_select_is_not_ddl() -> None:
    with pytest.raises(SqlError, match="found SELECT"):
        parse_ddl("SELECT a FROM b")


DEMO = """CREATE STREAM demo (
    id BIGINT DEFAULT 10, name STRING, tags ARRAY(STRING), addr STRUCT(A STRING, B BIGINT), ok BOOLEAN DEFAULT true
) WITH (DATASOURCE="topic/demo", FORMAT="json", CONF_KEY="srv", KEY="id", SHARED="true", TYPE="mqtt",
        TIMESTAMP="ts", STRICT_VALIDATION="true", TIMESTAMP_FORMAT="YYYY", VERSION="2", EXTRA="{}")"""


def test_describe_text() -> None:
    assert describe_text(_stream(DEMO)) == (
        "Fields\n" + "-" * 80 + "\n"
        "id\tbigint\tDEFAULT\t10\n"
        "name\tstring\n"
        "tags\tarray(string)\n"
        "addr\tstruct(A string, B bigint)\n"
        "ok\tboolean\tDEFAULT\ttrue\n"
        "\n"
        "CONF_KEY: srv\nDATASOURCE: topic/demo\nFORMAT: json\nKEY: id\nSHARED: true\nSTRICT_VALIDATION: true\n"
        "TIMESTAMP: ts\nTIMESTAMP_FORMAT: YYYY\nTYPE: mqtt\nEXTRA: {}\nVERSION: 2\n"
    )


def test_describe_schemaless_table() -> None:
    text = describe_text(
        _stream('CREATE TABLE t () WITH (DATASOURCE="t.json", TYPE="file", RETAIN_SIZE="5")')
    )
    assert (
        text == "Fields\n" + "-" * 80 + "\n\nDATASOURCE: t.json\nFORMAT: json\nRETAIN_SIZE: 5\nTYPE: file\n"
    )


def test_stream_json() -> None:
    assert stream_json(_stream(DEMO)) == {
        "Name": "demo",
        "StreamFields": [
            {"FieldType": "bigint", "Name": "id", "DefaultClause": "10"},
            {"FieldType": "string", "Name": "name"},
            {"FieldType": {"Type": "array", "ElementType": "string"}, "Name": "tags"},
            {
                "FieldType": {
                    "Type": "struct",
                    "Fields": [{"FieldType": "string", "Name": "A"}, {"FieldType": "bigint", "Name": "B"}],
                },
                "Name": "addr",
            },
            {"FieldType": "boolean", "Name": "ok", "DefaultClause": "true"},
        ],
        "Options": {
            "datasource": "topic/demo",
            "format": "json",
            "key": "id",
            "confKey": "srv",
            "type": "mqtt",
            "strictValidation": True,
            "timestamp": "ts",
            "timestampFormat": "YYYY",
            "shared": True,
            "version": "2",
            "extra": "{}",
        },
        "StreamType": 0,
        "Statement": None,
    }


def test_stream_json_schemaless_table() -> None:
    body = stream_json(_stream('CREATE TABLE t () WITH (DATASOURCE="t", KIND="lookup", TYPE="redis")'))
    assert body["StreamFields"] is None and body["StreamType"] == 1
    assert body["Options"] == {"datasource": "t", "format": "json", "type": "redis", "kind": "lookup"}


def test_stream_schema() -> None:
    schema = stream_schema(
        _stream("CREATE STREAM s (f bigint, arr array(struct(x float)), st struct(y string)) WITH ()")
    )
    assert schema == {
        "f": {"type": "bigint"},
        "arr": {"type": "array", "items": {"type": "struct", "properties": {"x": {"type": "float"}}}},
        "st": {"type": "struct", "properties": {"y": {"type": "string"}}},
    }
    assert stream_schema(_stream("CREATE STREAM s () WITH ()")) == {}
