"""The built-in function registry (eKuiper docs sqls/functions/overview.md): name -> kind, arity, parse-time
checks, implementation.

One module per family yields ``FunctionDef`` values; adding a function is adding one entry there. Names
are case-insensitive. The registry is built once at import and is read-only; the expression compiler looks
a name up once per call site at compile time, never per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from runtime.sql.functions.base import FuncKind, FunctionDef, arity_error

__all__ = ["FuncKind", "FunctionDef", "arity_error", "function_names", "lookup"]


def lookup(name: str) -> FunctionDef | None:
    return _REGISTRY.get(name.lower())


def function_names() -> list[str]:
    return sorted(_REGISTRY)


def _build() -> Mapping[str, FunctionDef]:
    # Imported here: the families are built once, when the registry is.
    from runtime.sql.functions.analytic import analytic_defs
    from runtime.sql.functions.collections import collection_defs
    from runtime.sql.functions.convert import convert_defs
    from runtime.sql.functions.hits import hit_defs
    from runtime.sql.functions.jsonpath import jsonpath_defs
    from runtime.sql.functions.mathfuncs import math_defs
    from runtime.sql.functions.other import operator_owned_defs, other_defs
    from runtime.sql.functions.rulestate import rule_state_defs
    from runtime.sql.functions.strings import string_defs
    from runtime.sql.functions.timefuncs import time_defs

    families = (
        math_defs(),
        string_defs(),
        convert_defs(),
        jsonpath_defs(),
        collection_defs(lookup),
        time_defs(),
        other_defs(),
        analytic_defs(),
        hit_defs(),
        operator_owned_defs(),
        rule_state_defs(),
    )
    table: dict[str, FunctionDef] = {}
    for family in families:
        for fdef in family:
            assert fdef.name not in table, f"function {fdef.name} registered twice"
            table[fdef.name] = fdef
    return MappingProxyType(table)


# Read-only after import (no module-level mutable state).
_REGISTRY: Mapping[str, FunctionDef] = _build()
