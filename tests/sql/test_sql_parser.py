"""SELECT parsing: AST shape, name resolution, function checks, and error positions/excerpts."""

from __future__ import annotations

import pytest

from runtime.errors import SqlError
from runtime.sql.ast import (
    Between,
    BinaryOp,
    Call,
    Case,
    FieldRef,
    In,
    Index,
    Like,
    ListExpr,
    Literal,
    NestedRef,
    Select,
    SelectField,
    Slice,
    SourceRef,
    TimeUnit,
    Wildcard,
)
from runtime.sql.parser import parse_select, parse_statements


def _expr(text: str) -> object:
    return parse_select(f"SELECT {text} FROM demo").fields[0].expr


a, b, c = FieldRef(None, "a"), FieldRef(None, "b"), FieldRef(None, "c")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b * c", BinaryOp("+", a, BinaryOp("*", b, c))),
        ("(a + b) * c", BinaryOp("*", BinaryOp("+", a, b), c)),
        ("a - b - c", BinaryOp("-", BinaryOp("-", a, b), c)),
        ("a OR b AND c", BinaryOp("OR", a, BinaryOp("AND", b, c))),
        ("a = 1 AND b > 2", BinaryOp("AND", BinaryOp("=", a, Literal(1)), BinaryOp(">", b, Literal(2)))),
        ("a + 1 > b * 2", BinaryOp(">", BinaryOp("+", a, Literal(1)), BinaryOp("*", b, Literal(2)))),
        ("a ! = 1", BinaryOp("!=", a, Literal(1))),
        ("a > = 1", BinaryOp(">=", a, Literal(1))),
        ("a % 2 & 1", BinaryOp("&", BinaryOp("%", a, Literal(2)), Literal(1))),
        ("-3", Literal(-3)),
        ("- 3", Literal(-3)),
        ("-. 3", Literal(-0.3)),
        ("-3.5", Literal(-3.5)),
        (".5", Literal(0.5)),
        ("a - -3", BinaryOp("-", a, Literal(-3))),
        ("1e3", Literal(1000.0)),
        ("'x'", Literal("x")),
        ("TRUE", Literal(True)),
        ("false", Literal(False)),
        ("a->b->c", NestedRef(NestedRef(a, "b"), "c")),
        ("a.b", NestedRef(a, "b")),
        ("demo.b", FieldRef("demo", "b")),
        ("demo.a.b", NestedRef(FieldRef("demo", "a"), "b")),
        ("a[0]", Index(a, Literal(0))),
        ("a[-1]->b", NestedRef(Index(a, Literal(-1)), "b")),
        ("a[1:b]", Slice(a, Literal(1), b)),
        ("a[:]", Slice(a, None, None)),
        ("`a-b`", FieldRef(None, "a-b")),
        ("LenGth(a)", Call("length", (a,))),
        ("count(*)", Call("count", (Wildcard(),))),
        ("a IN (1, 2)", In(a, ListExpr((Literal(1), Literal(2))))),
        ("a NOT IN b", In(a, b, negated=True)),
        ("a BETWEEN 1 AND 2", Between(a, Literal(1), Literal(2))),
        ("a NOT LIKE 'x%'", Like(a, Literal("x%"), negated=True)),
        ("CASE a WHEN 1 THEN 'x' ELSE 'y' END", Case(a, ((Literal(1), Literal("x")),), Literal("y"))),
        ("CASE WHEN a > 1 THEN b END", Case(None, ((BinaryOp(">", a, Literal(1)), b),), None)),
    ],
)
def test_expressions(text: str, expected: object) -> None:
    assert _expr(text) == expected


def test_select_shape() -> None:
    select = parse_select("SELECT temperature * 2 AS t2, id, * FROM s AS x WHERE x.temperature > 20;")
    assert select == Select(
        fields=(
            SelectField(BinaryOp("*", FieldRef(None, "temperature"), Literal(2)), "t2"),
            SelectField(FieldRef(None, "id")),
            SelectField(Wildcard()),
        ),
        sources=(SourceRef("s", "x"),),
        where=BinaryOp(">", FieldRef("x", "temperature"), Literal(20)),
        statement="SELECT temperature * 2 AS t2, id, * FROM s AS x WHERE x.temperature > 20",
    )


def test_join_sources_are_listed() -> None:
    select = parse_select("SELECT * FROM a AS t1 LEFT JOIN b ON t1.x = b.y GROUP BY TUMBLINGWINDOW(ss, 10)")
    assert [s.name for s in select.sources] == ["a", "b"]
    assert select.joins[0].kind == "left"
    assert select.group_by == (Call("tumblingwindow", (TimeUnit("ss"), Literal(10))),)


def test_wildcard_except_replace_and_qualified() -> None:
    select = parse_select("SELECT * EXCEPT(a, b) REPLACE(c * 2 AS c), demo.* FROM demo")
    assert select.fields[0].expr == Wildcard(
        None, ("a", "b"), (SelectField(BinaryOp("*", c, Literal(2)), "c"),)
    )
    assert select.fields[1].expr == Wildcard("demo")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT nope(a) FROM t", "function nope not found"),
        ("SELECT count(*, f1) FROM t", "validate function count error: Expect 1 arguments but found 2."),
        ("SELECT abs(a, b) FROM t", "validate function abs error: Expect 1 arguments but found 2."),
        ("SELECT round() FROM t", "validate function round error: Expect 1 to 2 arguments but found 0."),
        (
            "SELECT concat() FROM t",
            "validate function concat error: Expect at least 1 arguments but found 0.",
        ),
        ("SELECT * AS x FROM t", "alias is not supported for *"),
        ("SELECT a FROM t LIMIT 1.5", "limit should be integer"),
        ("SELECT avg(a) OVER (PARTITION BY b) FROM t", "Found OVER after non analytic function avg"),
        ("SELECT a FROM t WHERE unnest(a)", "select statement shouldn't has srf except fields"),
        (
            "SELECT a FROM t GROUP BY COUNTWINDOW(3, 5)",
            "The second parameter value 5 should be less than the first parameter 3.",
        ),
    ],
)
def test_semantic_errors(sql: str, message: str) -> None:
    with pytest.raises(SqlError) as info:
        parse_select(sql)
    assert info.value.message == message


def test_function_error_position() -> None:
    with pytest.raises(SqlError) as info:
        parse_select("SELECT a,\n  nope(a) FROM t")
    assert (info.value.line, info.value.column) == (2, 3)
    assert info.value.context == "  nope(a) FROM t\n  ^"


def test_error_on_line_three_has_position_and_excerpt() -> None:
    sql = "SELECT a,\n       b\nFROM t WHERE a > > 1"
    with pytest.raises(SqlError) as info:
        parse_select(sql)
    err = info.value
    assert (err.line, err.column) == (3, 18)
    assert err.message.startswith('found ">", expected ')
    assert err.message.endswith("at line 3, column 18")
    assert err.context == "FROM t WHERE a > > 1\n                 ^"


def test_error_at_end_of_input_points_after_the_text() -> None:
    # Lark reports $END at the last real token; the error must point past the end instead.
    with pytest.raises(SqlError) as info:
        parse_select("SELECT a\nFROM t WHERE")
    assert info.value.message == 'found "EOF", expected expression at line 2, column 13'
    assert (info.value.line, info.value.column) == (2, 13)


def test_unterminated_string() -> None:
    with pytest.raises(SqlError) as info:
        parse_select("SELECT \"abc' FROM tbl")
    assert info.value.message.startswith("unterminated string")
    assert (info.value.line, info.value.column) == (1, 8)


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("SELECT *, FROM tbl", '"FROM"'),
        ("SELECT -abc FROM t", '"abc"'),
        ("SELECTname FROM tbl", '"SELECTname"'),
    ],
)
def test_syntax_error_names_the_found_token(sql: str, found: str) -> None:
    with pytest.raises(SqlError, match=f"^found {found}, expected .* at line 1, column \\d+$"):
        parse_select(sql)


def test_parse_select_rejects_ddl() -> None:
    with pytest.raises(SqlError, match="expected a SELECT"):
        parse_select("DROP STREAM a")


def test_several_queries() -> None:
    stmts = parse_statements("SELECT a FROM t;\nSELECT b FROM u;\n-- done")
    assert [s.sources[0].name for s in stmts if isinstance(s, Select)] == ["t", "u"]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT size AS s, ts FROM demo WHERE size > 3", {"size", "ts"}),
        ("SELECT meta(topic), a.b FROM demo GROUP BY c, TUMBLINGWINDOW(ss, 1) HAVING d > 1", {"a", "c", "d"}),
        ("SELECT demo.x, other.y FROM demo ORDER BY z", {"x", "other", "z"}),  # other.y is other->y
        ("SELECT d.x FROM demo AS d", {"x"}),
        ("SELECT * FROM demo", None),
        ("SELECT count(*) FROM demo", None),
    ],
)
def test_fields_read(sql: str, expected: set[str] | None) -> None:
    from runtime.sql.semantic import fields_read

    select = parse_select(sql)
    assert fields_read(select, select.sources[0]) == (None if expected is None else frozenset(expected))


def test_parse_select_shares_the_ast_of_one_text_and_never_caches_errors() -> None:
    sql = "SELECT temperature FROM s WHERE temperature > 20"
    assert parse_select(sql) is parse_select(sql)
    assert parse_select(sql).statement == sql
    for _ in range(2):
        with pytest.raises(SqlError):
            parse_select("SELECT FROM WHERE")
