"""Oort: a streaming-SQL rule engine on Trio, compatible with eKuiper's DDL, rule JSON, SQL and REST surface.

The public face: the engine, configuration loading, the SQL entry points and the error classes. Everything
else is internal and may change.

The names are imported on first use (PEP 562 ``__getattr__``): every ``oort`` command starts by importing this
package, and loading the engine, the SQL grammar's parser and cattrs up front cost the CLI's client verbs
about 300 ms for nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.config import Config as Config
    from runtime.config import load_config as load_config
    from runtime.engine import Engine as Engine
    from runtime.errors import ConfigError as ConfigError
    from runtime.errors import EngineError as EngineError
    from runtime.errors import NotFoundError as NotFoundError
    from runtime.errors import PlanError as PlanError
    from runtime.errors import RuleError as RuleError
    from runtime.errors import SqlError as SqlError
    from runtime.sql.parser import parse_ddl as parse_ddl
    from runtime.sql.parser import parse_select as parse_select
    from runtime.sql.parser import parse_statements as parse_statements

_WHERE = {
    "Config": ("runtime.config", "Config"),
    "load_config": ("runtime.config", "load_config"),
    "Engine": ("runtime.engine", "Engine"),
    "ConfigError": ("runtime.errors", "ConfigError"),
    "EngineError": ("runtime.errors", "EngineError"),
    "NotFoundError": ("runtime.errors", "NotFoundError"),
    "PlanError": ("runtime.errors", "PlanError"),
    "RuleError": ("runtime.errors", "RuleError"),
    "SqlError": ("runtime.errors", "SqlError"),
    "parse_ddl": ("runtime.sql.parser", "parse_ddl"),
    "parse_select": ("runtime.sql.parser", "parse_select"),
    "parse_statements": ("runtime.sql.parser", "parse_statements"),
    "__version__": ("runtime.config", "VERSION"),
}

__all__ = [
    "Config",
    "ConfigError",
    "Engine",
    "EngineError",
    "NotFoundError",
    "PlanError",
    "RuleError",
    "SqlError",
    "load_config",
    "parse_ddl",
    "parse_select",
    "parse_statements",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value  # once: later lookups do not come here
    return value
