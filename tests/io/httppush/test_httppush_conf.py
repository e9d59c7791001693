"""The httppush conf group (``parse_push_conf``), the shipped ``etc/sources/httppush.toml`` and the registered
``httppush`` source factory and conf check: what they accept and every error they report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from runtime.clock import Clock
from runtime.config import conf_group
from runtime.errors import PlanError
from runtime.io.contract import IoContext, SourceSpec
from runtime.io.httppush.conf import CONF_KEYS, HARD_MAX_MESSAGE_SIZE, PushConf, parse_push_conf
from runtime.io.httppush.connector import PushSource
from runtime.io.registry import builtin_registry
from runtime.io.services import Services

REPO_ETC = Path(__file__).resolve().parents[3] / "etc"
WHERE = "httppush conf group 'g'"


def problems(props: dict[str, Any]) -> str:
    with pytest.raises(PlanError) as info:
        parse_push_conf(props, WHERE)
    return info.value.message


def test_empty_group_takes_post_with_a_one_mib_cap() -> None:
    conf = parse_push_conf({}, WHERE)
    assert conf == PushConf(method="POST", max_message_size=1 << 20, token="", allowed_origins=())
    assert conf.body_cap == 1 << 20
    assert PushConf(max_message_size=0).body_cap == HARD_MAX_MESSAGE_SIZE


def test_every_key_parses_and_eKuipers_buffer_length_is_accepted() -> None:
    conf = parse_push_conf(
        {
            "method": "put",
            "maxMessageSize": 10,
            "token": "t0k",
            "allowedOrigins": "https://a",
            "bufferLength": 1024,  # eKuiper's internal channel size: accepted, no effect
        },
        WHERE,
    )
    assert conf == PushConf(method="PUT", max_message_size=10, token="t0k", allowed_origins=("https://a",))
    assert "t0k" not in repr(conf)
    assert CONF_KEYS == ("method", "maxMessageSize", "token", "allowedOrigins")


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"method": "GET"}, "method: method 'GET' is not supported, must be POST or PUT"),
        ({"method": 1}, "method: expected a string, got int 1"),
        ({"maxMessageSize": -1}, "maxMessageSize: must not be negative, got -1"),
        ({"maxMessageSize": "1MB"}, "maxMessageSize: expected a non-negative integer, got str '1MB'"),
        ({"token": 5}, "token: expected a string, got int 5"),
        ({"allowedOrigins": [1]}, "allowedOrigins: expected a list of strings, got list [1]"),
        ({"methd": "POST"}, "methd: unknown key; did you mean 'method'?"),
    ],
)
def test_bad_values_name_their_key(props: dict[str, Any], message: str) -> None:
    assert problems(props) == f"{WHERE}: {message}"


def test_every_problem_is_listed_at_once() -> None:
    message = problems({"method": "DELETE", "maxMessageSize": -5, "tokn": "x"})
    assert message.count(WHERE) == 3
    assert "method:" in message and "maxMessageSize:" in message and "tokn:" in message


def test_shipped_conf_file_is_valid_and_takes_post() -> None:
    props = conf_group(REPO_ETC, "sources", "httppush", "default")
    assert parse_push_conf(props, WHERE) == PushConf()
    # The commented PUT group, uncommented, is valid too.
    text = (REPO_ETC / "sources" / "httppush.toml").read_text()
    assert '# [application_conf]\n# method = "PUT"' in text


def test_registry_knows_httppush_and_checks_its_conf_groups() -> None:
    registry = builtin_registry()
    assert "httppush" in registry.source_types()
    registry.check_conf("sources", "httppush", {"method": "PUT"}, "g")
    with pytest.raises(PlanError, match="g: method: method 'PATCH' is not supported"):
        registry.check_conf("sources", "HTTPPUSH", {"method": "PATCH"}, "g")


def _spec(datasource: str, props: dict[str, Any] | None = None, fmt: str = "json") -> SourceSpec:
    ctx = IoContext(rule_id="r", clock=Clock(), services=Services(), logger=logging.getLogger("r"))
    return SourceSpec(
        stream="s", type="httppush", datasource=datasource, format=fmt, props=props or {}, options={}, ctx=ctx
    )


@pytest.mark.parametrize(
    ("datasource", "props", "fmt", "message"),
    [
        (
            "api/data",
            {},
            "json",
            "stream s: httppush DATASOURCE must be a URL path such as '/api/data', got 'api/data'",
        ),
        ("", {}, "json", "stream s: httppush DATASOURCE must be a URL path"),
        (
            "/a",
            {"method": "GET"},
            "json",
            "stream s: httppush conf group: method: method 'GET' is not supported",
        ),
        ("/a", {}, "avro", "stream s: FORMAT 'avro' cannot be decoded"),
    ],
)
async def test_factory_errors_name_the_stream(
    datasource: str, props: dict[str, Any], fmt: str, message: str
) -> None:
    factory = builtin_registry().source_factory("httppush")
    with pytest.raises(PlanError) as info:
        factory(_spec(datasource, props, fmt))
    assert info.value.message.startswith(message)


async def test_factory_builds_a_push_source_for_the_method() -> None:
    source = builtin_registry().source_factory("httppush")(_spec("/api/data", {"method": "PUT"}))
    assert isinstance(source, PushSource)
    assert repr(source) == "<PushSource stream=s PUT /api/data>"
