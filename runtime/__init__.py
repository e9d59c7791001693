"""Oort: a streaming-SQL rule engine on Trio, compatible with eKuiper's DDL, rule JSON, SQL and REST surface.

The public face: the engine, configuration loading, the SQL entry points and the error classes. Everything
else is internal and may change.
"""

from __future__ import annotations

from runtime.config import VERSION
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

__version__ = VERSION

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
