"""Tests for runtime/config.py: the oort.toml schema, rule options and conf groups, every error message exact."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from runtime.config import (
    BasicConf,
    Config,
    RestartStrategy,
    RuleOptions,
    SourceConf,
    TlsConf,
    conf_group,
    delete_conf_group,
    dump_config,
    load_conf_groups,
    load_config,
    parse_config,
    parse_duration_ms,
    rule_options,
    save_conf_group,
    unstructure_rule_options,
)
from runtime.errors import ConfigError, NotFoundError

REPO_ETC = Path(__file__).resolve().parent.parent / "etc"


def config_problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.message == "; ".join(info.value.problems)
    return info.value.problems


def option_problems(user: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        rule_options(user, RuleOptions())
    return info.value.problems


# --- oort.toml: defaults --------------------------------------------------------------------------------------


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == Config()


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    (tmp_path / "oort.toml").write_text("")
    config = load_config(tmp_path)
    assert config == Config()
    assert config.basic == BasicConf(rest_ip="127.0.0.1", rest_port=9081, log_level="info", timezone="UTC")
    assert config.source == SourceConf(
        http_server_ip="127.0.0.1", http_server_port=10081, http_server_tls=None
    )
    assert config.rule.buffer_length == 1024
    assert config.rule.late_tolerance == 1000
    assert config.rule.checkpoint_interval == 300000
    assert config.rule.restart_strategy == RestartStrategy(
        attempts=0, delay=1000, multiplier=2.0, max_delay=30000, jitter_factor=0.1
    )


def test_missing_sections_and_keys_keep_defaults() -> None:
    config = parse_config("[source]\nhttpServerPort = 0\n[rule.restartStrategy]\nattempts = 3\n")
    assert config.basic == BasicConf()
    assert config.source == SourceConf(http_server_port=0)
    assert config.rule == RuleOptions(restart_strategy=RestartStrategy(attempts=3))


def test_shipped_oort_toml_equals_defaults() -> None:
    assert load_config(REPO_ETC) == Config()


def test_shipped_conf_groups() -> None:
    assert conf_group(REPO_ETC, "sources", "file", "default") == {
        "fileType": "json",
        "path": "",
        "interval": 0,
    }
    assert load_conf_groups(REPO_ETC, "sources", "memory") == {"default": {}}


def test_full_config_with_tls() -> None:
    config = parse_config(
        """
        [basic]
        restIp = "0.0.0.0"
        restPort = 0
        logLevel = "warning"
        [source]
        httpServerPort = 8443
        [source.httpServerTls]
        certfile = "s.crt"
        keyfile = "s.key"
        caFile = "ca.crt"
        [rule]
        bufferLength = 16
        sendError = true
        lateTolerance = "2s"
        [rule.restartStrategy]
        multiplier = 3
        """
    )
    assert config.basic == BasicConf(rest_ip="0.0.0.0", rest_port=0, log_level="warning")
    assert config.source.http_server_tls == TlsConf(certfile="s.crt", keyfile="s.key", ca_file="ca.crt")
    assert config.rule.buffer_length == 16 and config.rule.send_error is True
    assert config.rule.late_tolerance == 2000
    # float fields accept an int (TOML users write 3, not 3.0)
    assert config.rule.restart_strategy.multiplier == 3.0
    assert type(config.rule.restart_strategy.multiplier) is float


def test_dump_round_trips() -> None:
    config = parse_config('[source.httpServerTls]\ncertfile = "a"\nkeyfile = "b"\n[rule]\nqos = 1\n')
    assert parse_config(dump_config(config)) == config
    assert parse_config(dump_config(Config())) == Config()


# --- oort.toml: errors ----------------------------------------------------------------------------------------


def test_unknown_key_top_level() -> None:
    assert config_problems("[basics]\nrestPort = 1\n") == ["oort.toml: basics: unknown key"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[basic]\nrestPot = 1\n", "oort.toml: basic.restPot: unknown key"),
        ("[source]\nhttpServerIP = 'x'\n", "oort.toml: source.httpServerIP: unknown key"),
        ("[rule]\nbuffer_length = 1\n", "oort.toml: rule.buffer_length: unknown key"),
        ("[rule.restartStrategy]\nretries = 1\n", "oort.toml: rule.restartStrategy.retries: unknown key"),
        (
            "[source.httpServerTls]\ncertfile = 'a'\nkeyfile = 'b'\ncafile = 'c'\n",
            "oort.toml: source.httpServerTls.cafile: unknown key",
        ),
        # eKuiper-only rule options are for rule JSON, not the [rule] defaults
        ("[rule]\ncron = '* * * * *'\n", "oort.toml: rule.cron: unknown key"),
        ("[rule]\nextra = {}\n", "oort.toml: rule.extra: unknown key"),
    ],
)
def test_unknown_key_nested(text: str, problem: str) -> None:
    assert config_problems(text) == [problem]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[source]\nhttpServerPort = "10081"\n',
            "oort.toml: source.httpServerPort: expected int, got str '10081'",
        ),
        (
            "[source]\nhttpServerPort = 10081.7\n",
            "oort.toml: source.httpServerPort: expected int, got float 10081.7",
        ),
        ("[basic]\nrestPort = true\n", "oort.toml: basic.restPort: expected int, got bool True"),
        ("[basic]\nrestIp = 127\n", "oort.toml: basic.restIp: expected str, got int 127"),
        ("[rule]\nsendError = 1\n", "oort.toml: rule.sendError: expected bool, got int 1"),
        ("[rule]\nsendError = 'yes'\n", "oort.toml: rule.sendError: expected bool, got str 'yes'"),
        (
            "[rule.restartStrategy]\nmultiplier = '2'\n",
            "oort.toml: rule.restartStrategy.multiplier: expected float, got str '2'",
        ),
        (
            "[rule.restartStrategy]\njitterFactor = false\n",
            "oort.toml: rule.restartStrategy.jitterFactor: expected float, got bool False",
        ),
        (
            "[source.httpServerTls]\ncertfile = 1\nkeyfile = 'k'\n",
            "oort.toml: source.httpServerTls.certfile: expected str, got int 1",
        ),
        ("basic = 3\n", "oort.toml: basic: expected a table (JSON object), got int 3"),
        (
            "[source]\nhttpServerTls = 'on'\n",
            "oort.toml: source.httpServerTls: expected a table (JSON object), got str 'on'",
        ),
        (
            "[rule]\nrestartStrategy = [1]\n",
            "oort.toml: rule.restartStrategy: expected a table (JSON object), got list [1]",
        ),
        (
            "[source.httpServerTls]\ncertfile = 'c'\n",
            "oort.toml: source.httpServerTls.keyfile: missing required key",
        ),
        (
            "[rule]\nlateTolerance = 1.5\n",
            "oort.toml: rule.lateTolerance: expected int (ms) or a duration string, got float 1.5",
        ),
        (
            "[rule]\ncheckpointInterval = '5 minutes'\n",
            "oort.toml: rule.checkpointInterval: expected a duration like '1s' or '500ms', got '5 minutes'",
        ),
    ],
)
def test_wrong_type(text: str, problem: str) -> None:
    assert config_problems(text) == [problem]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[basic]\nrestPort = 65536\n", "oort.toml: basic.restPort: must be in 0..65535, got 65536"),
        ("[source]\nhttpServerPort = -1\n", "oort.toml: source.httpServerPort: must be in 0..65535, got -1"),
        (
            "[basic]\nlogLevel = 'verbose'\n",
            "oort.toml: basic.logLevel: must be one of debug, info, warn, warning, error, got 'verbose'",
        ),
        ("[basic]\ntimezone = ''\n", "oort.toml: basic.timezone: must not be empty"),
        ("[rule]\nbufferLength = 0\n", "oort.toml: rule.bufferLength: must be >= 1, got 0"),
        ("[rule]\nqos = 3\n", "oort.toml: rule.qos: must be in 0..2, got 3"),
        ("[rule]\nlateTolerance = '-1s'\n", "oort.toml: rule.lateTolerance: must be >= 0, got -1000"),
        (
            "[rule]\nbufferFullPolicy = 'drop'\n",
            "oort.toml: rule.bufferFullPolicy: must be one of block, dropOldest, dropNewest, got 'drop'",
        ),
        (
            "[rule.restartStrategy]\nattempts = -1\n",
            "oort.toml: rule.restartStrategy.attempts: must be >= 0, got -1",
        ),
        (
            "[rule.restartStrategy]\nmultiplier = 0.5\n",
            "oort.toml: rule.restartStrategy.multiplier: must be >= 1, got 0.5",
        ),
        (
            "[rule.restartStrategy]\njitterFactor = 1.5\n",
            "oort.toml: rule.restartStrategy.jitterFactor: must be in 0..1, got 1.5",
        ),
        (
            "[source.httpServerTls]\ncertfile = ''\nkeyfile = 'k'\n",
            "oort.toml: source.httpServerTls.certfile: must not be empty",
        ),
    ],
)
def test_out_of_range(text: str, problem: str) -> None:
    assert config_problems(text) == [problem]


def test_boundary_values_are_accepted() -> None:
    config = parse_config(
        "[basic]\nrestPort = 65535\n[rule]\nbufferLength = 1\nqos = 2\n"
        "[rule.restartStrategy]\nmultiplier = 1\njitterFactor = 0\nattempts = 0\n"
    )
    assert config.basic.rest_port == 65535
    assert config.rule.restart_strategy.jitter_factor == 0.0


def test_every_problem_is_listed_together(tmp_path: Path) -> None:
    (tmp_path / "oort.toml").write_text(
        """
        [basic]
        restPot = 1
        logLevel = "loud"
        [source]
        httpServerPort = "10081"
        [source.httpServerTls]
        certfile = 5
        [rule]
        bufferLength = -3
        [rule.restartStrategy]
        jitterFactor = 2
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    expected = [
        "oort.toml: basic.logLevel: must be one of debug, info, warn, warning, error, got 'loud'",
        "oort.toml: basic.restPot: unknown key",
        "oort.toml: source.httpServerPort: expected int, got str '10081'",
        "oort.toml: source.httpServerTls.certfile: expected str, got int 5",
        "oort.toml: source.httpServerTls.keyfile: missing required key",
        "oort.toml: rule.bufferLength: must be >= 1, got -3",
        "oort.toml: rule.restartStrategy.jitterFactor: must be in 0..1, got 2.0",
    ]
    assert info.value.problems == expected
    assert info.value.message == "; ".join(expected)
    assert info.value.code == 5000


def test_bad_toml_keeps_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "oort.toml").write_text('[basic]\nrestPort = 9081\nrestIp = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.message == "oort.toml: invalid TOML: Illegal character '\\n' (at line 3, column 23)"
    assert info.value.problems == [info.value.message]


def test_duplicate_toml_key_is_bad_toml() -> None:
    with pytest.raises(ConfigError, match=r"^oort\.toml: invalid TOML: Cannot overwrite a value \(at line 3"):
        parse_config("[basic]\nrestPort = 1\nrestPort = 2\n")


# --- rule options ---------------------------------------------------------------------------------------------


def test_rule_options_empty_gives_defaults() -> None:
    defaults = RuleOptions(buffer_length=8, send_error=True)
    assert rule_options({}, defaults) == defaults
    assert rule_options({}, RuleOptions()) == Config().rule


def test_rule_options_merge_over_defaults() -> None:
    defaults = parse_config("[rule]\nbufferLength = 8\nsendError = true\n").rule
    opts = rule_options({"bufferLength": 4, "qos": 1, "bufferFullPolicy": "dropNewest"}, defaults)
    assert opts == RuleOptions(buffer_length=4, send_error=True, qos=1, buffer_full_policy="dropNewest")


def test_restart_strategy_merges_key_by_key() -> None:
    defaults = RuleOptions(restart_strategy=RestartStrategy(attempts=2, delay=50, max_delay=400))
    opts = rule_options({"restartStrategy": {"attempts": 5, "multiplier": 1.5}}, defaults)
    assert opts.restart_strategy == RestartStrategy(attempts=5, delay=50, multiplier=1.5, max_delay=400)


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (0, 0),
        (250, 250),
        ("1s", 1000),
        ("500ms", 500),
        ("1m30s", 90000),
        ("1.5h", 5400000),
        ("0", 0),
        ("1500us", 1),
    ],
)
def test_duration_options(value: int | str, ms: int) -> None:
    opts = rule_options({"lateTolerance": value, "checkpointInterval": value}, RuleOptions())
    assert opts.late_tolerance == ms
    assert opts.checkpoint_interval == ms


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1s2", "1 s", "--1s"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_ms(text)


def test_ekuiper_only_options_are_kept_in_extra() -> None:
    user = {
        "cron": "*/5 * * * *",
        "duration": "1m",
        "debug": True,
        "planOptimizeStrategy": {"enableIncrementalWindow": True},
        "experiment": {"useSliceTuple": True},
        "sendError": True,
    }
    opts = rule_options(user, RuleOptions())
    assert opts.send_error is True
    assert opts.extra == {k: v for k, v in user.items() if k != "sendError"}
    exported = unstructure_rule_options(opts)
    assert exported["cron"] == "*/5 * * * *" and exported["sendError"] is True


def test_null_option_keeps_default() -> None:
    opts = rule_options(
        {"bufferLength": None, "restartStrategy": {"attempts": None, "delay": 5}}, RuleOptions()
    )
    assert opts == RuleOptions(restart_strategy=RestartStrategy(delay=5))


def test_unstructure_rule_options_is_camel_case_and_round_trips() -> None:
    opts = rule_options(
        {"lateTolerance": "2s", "restartStrategy": {"attempts": 1}, "notifySub": True}, RuleOptions()
    )
    raw = unstructure_rule_options(opts)
    assert raw == {
        "isEventTime": False,
        "lateTolerance": 2000,
        "concurrency": 1,
        "bufferLength": 1024,
        "sendMetaToSink": False,
        "sendError": False,
        "sendNilField": False,
        "qos": 0,
        "checkpointInterval": 300000,
        "restartStrategy": {
            "attempts": 1,
            "delay": 1000,
            "multiplier": 2.0,
            "maxDelay": 30000,
            "jitterFactor": 0.1,
        },
        "bufferFullPolicy": "block",
        "notifySub": True,
    }
    assert rule_options(raw, RuleOptions()) == opts


@pytest.mark.parametrize(
    ("user", "problems"),
    [
        ({"bufferLenght": 1}, ["options.bufferLenght: unknown key"]),
        ({"extra": {}}, ["options.extra: unknown key"]),
        ({"restartStrategy": {"tries": 1}}, ["options.restartStrategy.tries: unknown key"]),
        ({"bufferLength": "10"}, ["options.bufferLength: expected int, got str '10'"]),
        ({"concurrency": 0}, ["options.concurrency: must be >= 1, got 0"]),
        ({"isEventTime": "true"}, ["options.isEventTime: expected bool, got str 'true'"]),
        (
            {"lateTolerance": "soon"},
            ["options.lateTolerance: expected a duration like '1s' or '500ms', got 'soon'"],
        ),
        ({"lateTolerance": -5}, ["options.lateTolerance: must be >= 0, got -5"]),
        (
            {"restartStrategy": 3},
            ["options.restartStrategy: expected a table (JSON object), got int 3"],
        ),
        (
            {"restartStrategy": {"delay": 1.5, "multiplier": "x"}},
            [
                "options.restartStrategy.delay: expected int, got float 1.5",
                "options.restartStrategy.multiplier: expected float, got str 'x'",
            ],
        ),
        (
            {"qos": 9, "sendError": 0, "typo": 1, "bufferFullPolicy": "drop"},
            [
                "options.sendError: expected bool, got int 0",
                "options.qos: must be in 0..2, got 9",
                "options.bufferFullPolicy: must be one of block, dropOldest, dropNewest, got 'drop'",
                "options.typo: unknown key",
            ],
        ),
    ],
)
def test_rule_option_errors(user: dict[str, Any], problems: list[str]) -> None:
    assert option_problems(user) == problems


# --- conf groups ----------------------------------------------------------------------------------------------


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def test_conf_group_crud_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sources" / "websocket.toml"
    assert load_conf_groups(tmp_path, "sources", "websocket") == {}
    assert conf_group(tmp_path, "sources", "websocket", "default") == {}

    save_conf_group(tmp_path, "sources", "websocket", "default", {"addr": "", "connectTimeout": 5000})
    assert read_toml(path) == {"default": {"addr": "", "connectTimeout": 5000}}

    props = {
        "addr": "ws://127.0.0.1:9/x",
        "rootCaPath": None,
        "headers": {"a": "1", "b": None},
        "ids": [1, None, 2],
    }
    save_conf_group(tmp_path, "sources", "websocket", "feedA", props)
    assert read_toml(path) == {
        "default": {"addr": "", "connectTimeout": 5000},
        "feedA": {"addr": "ws://127.0.0.1:9/x", "headers": {"a": "1"}, "ids": [1, 2]},
    }
    merged = conf_group(tmp_path, "sources", "websocket", "feedA")
    assert merged == {
        "addr": "ws://127.0.0.1:9/x",
        "connectTimeout": 5000,
        "headers": {"a": "1"},
        "ids": [1, 2],
    }

    # save replaces the whole group, it does not merge into it
    save_conf_group(tmp_path, "sources", "websocket", "feedA", {"insecureSkipVerify": True})
    assert read_toml(path)["feedA"] == {"insecureSkipVerify": True}

    delete_conf_group(tmp_path, "sources", "websocket", "feedA")
    assert read_toml(path) == {"default": {"addr": "", "connectTimeout": 5000}}
    delete_conf_group(tmp_path, "sources", "websocket", "default")
    assert read_toml(path) == {}
    assert [p.name for p in path.parent.iterdir()] == ["websocket.toml"]  # no temp files left


def test_conf_group_result_is_a_fresh_dict(tmp_path: Path) -> None:
    save_conf_group(tmp_path, "sinks", "log", "default", {"level": "info"})
    conf_group(tmp_path, "sinks", "log", "default")["level"] = "changed"
    assert conf_group(tmp_path, "sinks", "log", "default") == {"level": "info"}


def test_unknown_conf_key(tmp_path: Path) -> None:
    save_conf_group(tmp_path, "sources", "file", "default", {"path": "data"})
    save_conf_group(tmp_path, "sources", "file", "csv", {"fileType": "csv"})
    with pytest.raises(ConfigError) as info:
        conf_group(tmp_path, "sources", "file", "x")
    assert info.value.message == "conf key 'x' is not found in sources/file.toml (known: csv, default)"
    with pytest.raises(
        ConfigError, match=r"^conf key 'x' is not found in sources/nofile\.toml \(known: none\)$"
    ):
        conf_group(tmp_path, "sources", "nofile", "x")
    with pytest.raises(NotFoundError, match=r"^conf key 'x' is not found in sources/file\.toml$"):
        delete_conf_group(tmp_path, "sources", "file", "x")


@pytest.mark.parametrize("key", ["", "a b", "../x", "a.b", "ключ", "nl\n"])
def test_invalid_conf_key(tmp_path: Path, key: str) -> None:
    message = f"invalid conf key {key!r}: use only letters, digits, '_' and '-', at most 128"
    with pytest.raises(ConfigError) as info:
        save_conf_group(tmp_path, "sources", "file", key, {})
    assert info.value.message == message
    with pytest.raises(ConfigError):
        conf_group(tmp_path, "sources", "file", key)
    assert not (tmp_path / "sources").exists()


def test_invalid_type_name_cannot_escape_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^invalid connector type '\.\./oort'$"):
        save_conf_group(tmp_path, "sources", "../oort", "default", {})


def test_broken_conf_file(tmp_path: Path) -> None:
    folder = tmp_path / "sinks"
    folder.mkdir()
    (folder / "log.toml").write_text("[default\n")
    with pytest.raises(ConfigError, match=r"^sinks/log\.toml: invalid TOML: .*\(at line 1, column 9\)$"):
        load_conf_groups(tmp_path, "sinks", "log")
    # a broken file is never overwritten by a save
    with pytest.raises(ConfigError):
        save_conf_group(tmp_path, "sinks", "log", "default", {})
    assert (folder / "log.toml").read_text() == "[default\n"

    (folder / "log.toml").write_text("level = 'x'\n[default]\n")
    with pytest.raises(ConfigError) as info:
        conf_group(tmp_path, "sinks", "log", "default")
    assert info.value.problems == ["sinks/log.toml: level: expected a table (one per conf key), got str 'x'"]


def test_unserializable_props_leave_file_untouched(tmp_path: Path) -> None:
    save_conf_group(tmp_path, "sources", "file", "default", {"path": "data"})
    before = (tmp_path / "sources" / "file.toml").read_bytes()
    with pytest.raises(ConfigError, match=r"^sources/file\.toml: cannot write: "):
        save_conf_group(tmp_path, "sources", "file", "bad", {"value": object()})
    assert (tmp_path / "sources" / "file.toml").read_bytes() == before


def test_conf_groups_parse_is_reused_until_the_file_changes(tmp_path: Path) -> None:
    # The parsed file is cached for rule planning; callers still get their own copy, and any change of the
    # file (rewritten by Oort, or edited in place by hand) is seen on the next read.
    path = tmp_path / "sources" / "mqtt.toml"
    path.parent.mkdir()
    path.write_text('[default]\nqos = 1\n[k1]\nserver = "tcp://a:1883"\n')
    first = load_conf_groups(tmp_path, "sources", "mqtt")
    first["default"]["qos"] = 99
    assert load_conf_groups(tmp_path, "sources", "mqtt")["default"] == {"qos": 1}
    assert conf_group(tmp_path, "sources", "mqtt", "k1") == {"qos": 1, "server": "tcp://a:1883"}
    save_conf_group(tmp_path, "sources", "mqtt", "k2", {"qos": 2})
    assert load_conf_groups(tmp_path, "sources", "mqtt")["k2"] == {"qos": 2}
    path.write_text("[default]\nqos = 0\n")  # in place, same inode
    assert load_conf_groups(tmp_path, "sources", "mqtt") == {"default": {"qos": 0}}
    path.unlink()
    assert load_conf_groups(tmp_path, "sources", "mqtt") == {}


@pytest.mark.parametrize("key", ["fileRoots", "allowedOrigins", "allowedHosts"])
def test_a_list_setting_given_one_string_is_refused(key: str) -> None:
    # cattrs would iterate the string: fileRoots = "/srv/x" would make "/" a file root.
    with pytest.raises(ConfigError, match=rf"basic\.{key}: expected a list of strings, got str"):
        parse_config(f'[basic]\n{key} = "/srv/x"\n')
