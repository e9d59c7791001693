"""Oort's configuration: the version, the ``etc/oort.toml`` schema and loader, rule options, and the
``etc/<kind>/<type>.toml`` conf groups. A leaf package: it imports nothing of Oort but errors and file storage.
"""

from __future__ import annotations

from runtime.config.converter import parse_duration_ms as parse_duration_ms
from runtime.config.groups import ConfKind as ConfKind
from runtime.config.groups import check_conf_key as check_conf_key
from runtime.config.groups import conf_group as conf_group
from runtime.config.groups import delete_conf_group as delete_conf_group
from runtime.config.groups import load_conf_groups as load_conf_groups
from runtime.config.groups import save_conf_group as save_conf_group
from runtime.config.load import CONFIG_FILE as CONFIG_FILE
from runtime.config.load import dump_config as dump_config
from runtime.config.load import load_config as load_config
from runtime.config.load import parse_config as parse_config
from runtime.config.load import rule_options as rule_options
from runtime.config.load import unstructure_rule_options as unstructure_rule_options
from runtime.config.schema import BUFFER_FULL_POLICIES as BUFFER_FULL_POLICIES
from runtime.config.schema import EKUIPER_ONLY_OPTIONS as EKUIPER_ONLY_OPTIONS
from runtime.config.schema import LOG_LEVELS as LOG_LEVELS
from runtime.config.schema import MAX_ID_LENGTH as MAX_ID_LENGTH
from runtime.config.schema import PY_LOG_LEVELS as PY_LOG_LEVELS
from runtime.config.schema import BasicConf as BasicConf
from runtime.config.schema import Config as Config
from runtime.config.schema import RestartStrategy as RestartStrategy
from runtime.config.schema import RuleOptions as RuleOptions
from runtime.config.schema import SourceConf as SourceConf
from runtime.config.schema import TlsConf as TlsConf
from runtime.config.schema import id_problem as id_problem
from runtime.config.schema import is_loopback as is_loopback

VERSION = "0.1.0"
"""Oort's version (``runtime.__version__``, the REST ``/`` info and the OpenAPI document)."""

__all__ = [
    "BUFFER_FULL_POLICIES",
    "CONFIG_FILE",
    "EKUIPER_ONLY_OPTIONS",
    "LOG_LEVELS",
    "PY_LOG_LEVELS",
    "VERSION",
    "BasicConf",
    "ConfKind",
    "Config",
    "RestartStrategy",
    "RuleOptions",
    "SourceConf",
    "TlsConf",
    "check_conf_key",
    "conf_group",
    "delete_conf_group",
    "dump_config",
    "load_conf_groups",
    "load_config",
    "parse_config",
    "parse_duration_ms",
    "rule_options",
    "save_conf_group",
    "unstructure_rule_options",
]
