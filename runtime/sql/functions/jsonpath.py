"""JSON path functions (eKuiper docs sqls/functions/json_functions.md): a small evaluator for the path grammar
eKuiper documents.

Supported: ``$``, ``.key``, ``.*``, ``[n]`` (negative from the end), ``[*]``, ``["key"]`` and filters
``[? @.a.b > 1]`` / ``[? (@.a == "x")]`` with ``== != < <= > >=`` joined by ``&&`` / ``||``. A path made only of
keys and indexes selects one value; a wildcard or filter makes the result a list, as in PaesslerAG/jsonpath.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from runtime.sql.functions.base import FunctionDef, scalar, text
from runtime.sql.values import COMPARISON, EvalContext, EvalError

Step = Callable[[list[Any]], list[Any]]

_STEP = re.compile(
    r"""\.(?P<key>[A-Za-z_$][\w$-]*)|\.(?P<dotstar>\*)|\[\s*(?P<index>-?\d+)\s*\]|\[\s*(?P<star>\*)\s*\]"""
    r"""|\[\s*(?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\]|\[\?\s*(?P<filter>[^\]]*)\]"""
)
_CONDITION = re.compile(
    r"""\s*@((?:\.[\w$-]+)*)\s*(==|!=|<=|>=|<|>)\s*("(?:[^"\\]|\\.)*"|'[^']*'|[-\w.]+)\s*"""
)


def _keys(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list) else []


def _literal(token: str) -> Any:
    if token[0] in "'\"":
        return token[1:-1]
    return orjson.loads(token) if token not in ("True", "False") else token == "True"


def _combined(parts: list[Callable[[Any], bool]], every: bool) -> Callable[[Any], bool]:
    def test(item: Any) -> bool:
        results = (p(item) for p in parts)
        return all(results) if every else any(results)

    return test


def _filter_step(test: Callable[[Any], bool]) -> Step:
    return lambda values: [i for v in values for i in _keys(v) if test(i)]


def _condition(expr: str) -> Callable[[Any], bool]:
    expr = expr.strip()
    if expr.startswith("(") and expr.endswith(")"):
        expr = expr[1:-1]
    for joiner in ("||", "&&"):
        if joiner in expr:
            return _combined([_condition(p) for p in expr.split(joiner)], joiner == "&&")
    match = _CONDITION.fullmatch(expr)
    if match is None:
        raise EvalError(f"unsupported jsonpath filter {expr}")
    path = [k for k in match.group(1).split(".") if k]
    compare, literal = COMPARISON["=" if match.group(2) == "==" else match.group(2)], _literal(match.group(3))

    def test(item: Any) -> bool:
        for key in path:
            if not isinstance(item, dict) or key not in item:
                return False
            item = item[key]
        try:
            return compare(item, literal)
        except EvalError:
            return False

    return test


def _key_step(key: str) -> Step:
    def step(values: list[Any]) -> list[Any]:
        out = []
        for v in values:
            if not isinstance(v, dict) or key not in v:
                raise EvalError(f"unknown key {key}")
            out.append(v[key])
        return out

    return step


def _index_step(i: int) -> Step:
    def step(values: list[Any]) -> list[Any]:
        out = []
        for v in values:
            if isinstance(v, dict) and i == 0:
                out.append(v)  # $[0] on an object: the object itself (eKuiper's single-row wrapping)
                continue
            if not isinstance(v, list) or not -len(v) <= i < len(v):
                raise EvalError(f"index out of range: {i}")
            out.append(v[i])
        return out

    return step


def compile_path(path: str) -> tuple[list[Step], bool]:
    """Path text -> (steps, definite); raises EvalError on syntax it does not understand."""
    path = path.strip()
    if not path.startswith("$"):
        raise EvalError(f"jsonpath should start with $: {path}")
    steps: list[Step] = []
    definite, pos = True, 1
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            raise EvalError(f"unexpected {path[pos:]!r} in jsonpath {path}")
        pos = match.end()
        if match.group("key") is not None:
            steps.append(_key_step(match.group("key")))
        elif match.group("quoted") is not None:
            steps.append(_key_step(orjson.loads('"' + match.group("quoted")[1:-1] + '"')))
        elif match.group("index") is not None:
            steps.append(_index_step(int(match.group("index"))))
        elif match.group("filter") is not None:
            steps.append(_filter_step(_condition(match.group("filter"))))
            definite = False
        else:
            steps.append(lambda values: [i for v in values for i in _keys(v)])
            definite = False
    return steps, definite


def _evaluate(data: Any, path: Any) -> tuple[list[Any], bool]:
    if data is None:
        raise EvalError("invalid data nil for jsonpath")
    if isinstance(data, str | bytes):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise EvalError(f"invalid data for jsonpath: {exc}") from None
    steps, definite = compile_path(text(path))
    values = [data]
    for step in steps:
        values = step(values)
    return values, definite


def _query(a: Sequence[Any], ctx: EvalContext) -> Any:
    values, definite = _evaluate(a[0], a[1])
    return values[0] if definite else values


def _query_first(a: Sequence[Any], ctx: EvalContext) -> Any:
    values, _ = _evaluate(a[0], a[1])
    return values[0] if values else None


def _exists(a: Sequence[Any], ctx: EvalContext) -> bool:
    try:
        values, _ = _evaluate(a[0], a[1])
    except EvalError:
        return False  # errors mean "does not exist"
    return bool(values)


def jsonpath_defs() -> Iterable[FunctionDef]:
    yield scalar("json_path_query", 2, 2, _query, nulls=False)
    yield scalar("json_path_query_first", 2, 2, _query_first, nulls=False)
    yield scalar("json_path_exists", 2, 2, _exists, nulls=False)
