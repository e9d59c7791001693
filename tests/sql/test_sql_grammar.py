"""The grammar file itself: conflict-free under lark's strict mode, and keywords vs identifiers."""

from __future__ import annotations

import pytest

from runtime.errors import SqlError
from runtime.sql.ast import FieldRef, SourceRef
from runtime.sql.grammar import build_parser, grammar_text, unquote
from runtime.sql.parser import parse_select


def test_grammar_builds_in_strict_mode() -> None:
    # strict=True turns shift/reduce conflicts and same-priority terminal collisions into errors.
    parser = build_parser(strict=True)
    assert parser.parse("SELECT a FROM t", start="start").data == "start"


def test_grammar_text_found_from_checkout() -> None:
    assert "select_stmt" in grammar_text()


@pytest.mark.parametrize(
    "name", ["selected", "fromage", "byte", "order_id", "notes", "android", "NOTES", "ORIGIN"]
)
def test_keyword_prefixes_stay_identifiers(name: str) -> None:
    select = parse_select(f"SELECT {name} FROM t WHERE {name} = 1")
    assert select.fields[0].expr == FieldRef(None, name)


@pytest.mark.parametrize("sql", ["select a from t", "SeLeCt a FrOm t", "SELECT a FROM t;"])
def test_keywords_are_case_insensitive(sql: str) -> None:
    assert parse_select(sql).sources == (SourceRef("t"),)


@pytest.mark.parametrize("word", ["from", "where", "limit", "order", "default"])
def test_reserved_words_need_back_quotes(word: str) -> None:
    with pytest.raises(SqlError, match=f'found "{word}", expected expression'):
        parse_select(f"SELECT a + {word} FROM t")
    assert parse_select(f"SELECT `{word}` FROM t").fields[0].expr == FieldRef(None, word)


@pytest.mark.parametrize(
    "source", ["topic/sensor1", "topic/sensor1/#", "/topic/sensor1/+/temp1/", "`my-stream`", "tbl"]
)
def test_source_names(source: str) -> None:
    assert parse_select(f"SELECT a FROM {source} AS s").sources[0].name == source.strip("`")


def test_comments_and_block_comment_after_source() -> None:
    select = parse_select("/* c */ SELECT name -- trailing\n FROM tbl/*SELECT x FROM y*/")
    assert select.sources == (SourceRef("tbl"),)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"a\\"b\'c"', "a\"b'c"),
        ("'it\\'s'", "it's"),
        ('"tab\\tnl\\n"', "tab\tnl\n"),
        ('"\\x41\\u00e9\\101"', "Aé" + "A"),
        ("'back\\\\slash'", "back\\slash"),
    ],
)
def test_go_string_escapes(literal: str, value: str) -> None:
    from lark import Token

    assert unquote(Token("STRING_DQ", literal)) == value


def test_invalid_escape_is_an_error() -> None:
    with pytest.raises(SqlError, match="invalid string"):
        parse_select('SELECT ".*(/)(?!.*\\1)" FROM t')
