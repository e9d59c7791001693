"""The verbs of the ``oort`` command: each one's sub-words, options, usage lines, help and examples.

The verbs and their syntax are kuiper's (eKuiper docs api/cli/overview.md), plus ``serve``, ``config show``,
``query``, ``replay`` and ``completion``; ``runtime.cli`` runs what is parsed here. Every leaf gets at least
one example: ``oort VERB --help`` shows them, and tests/test_cli_help.py checks that each verb has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from runtime.cli_parser import (
    PROG,
    SUPPRESS,
    Parser,
    add_global_options,
    add_group,
    add_leaf,
    finish_group,
    full_forms,
)

CONF_KINDS: Final = ("sources", "sinks")  # the conf groups of connectors: eKuiper's two kinds

SERVE_EPILOG: Final = """\
Every key of oort.toml can also be set by an environment variable: OORT__ + section and key in capitals,
joined by __, e.g. OORT__BASIC__RESTPORT=9090 or OORT__RULE__RESTARTSTRATEGY__ATTEMPTS=3.
Precedence: flag > environment > oort.toml > default."""

ROOT_NOTES: Final = """\
-f FILE: for a stream or table, the file holds the text after CREATE STREAM|TABLE, as in eKuiper
(`demo (temp FLOAT) WITH (TYPE="memory", DATASOURCE="t")`); for a rule, the rule JSON.

--host, --data and --json may also come after the command (serve, config and replay have a --data of their
own and no --host). --host defaults to $OORT_HOST, else http://127.0.0.1:9081 (the daemon's REST API). The API
token is taken from OORT_TOKEN, else (for a daemon on this machine) from DIR/auth/token, DIR being --data
(default ./data). Tables are cut to the terminal's width (or $COLUMNS); --json output never is.

Exit codes: 0 done, 1 the daemon refused or could not be reached (its message on stderr), 2 bad usage.

Shell completion: add  eval "$(oort completion bash)"  to ~/.bashrc, or  eval "$(oort completion zsh)"  to
~/.zshrc after compinit."""


def _serve_options(parser: Parser) -> None:
    """The options of ``serve`` and ``config show``; ``runtime.cli._serve_options`` reads them."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--etc",
        metavar="DIR",
        type=Path,
        default=SUPPRESS,
        help="the configuration folder holding oort.toml; it must exist. Default: ./etc when it holds "
        "oort.toml, else the defaults shipped with Oort (read only: changes go to the data folder)",
    )
    where.add_argument(
        "--no-etc",
        action="store_true",
        default=SUPPRESS,
        help="run on the built-in defaults (no streams, rules or conf groups from etc/)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        default=SUPPRESS,
        help="the data folder: definitions, state, the API token (default ./data)",
    )
    # Ports are checked by runtime.cli, which says what was wrong with the value (--rest-port needs ...).
    for flag, metavar, key in (
        ("--rest-host", "IP", "basic.restIp: the REST API's address"),
        ("--rest-port", "N", "basic.restPort (0: any free port)"),
        ("--data-host", "IP", "source.httpServerIp: the data server's address (websocket sources)"),
        ("--data-port", "N", "source.httpServerPort"),
        ("--log-level", "LEVEL", "basic.logLevel: debug, info, warn, error"),
    ):
        parser.add_argument(flag, metavar=metavar, default=SUPPRESS, help=key)


def _definition(parser: Parser, first: str, *, optional: bool = False) -> None:
    """``FIRST DEFINITION ...`` or ``-f FILE``: a definition given inline (kuiper's words) or in a file.

    ``optional``: a stream's or table's NAME, which the file of ``-f`` holds instead.
    """
    what = "the rule's id" if first == "ID" else "its name"
    parser.add_argument("name", metavar=first, nargs="?" if optional else None, help=what)
    parser.add_argument(
        "words", metavar="DEFINITION", nargs="*", help="the definition, usually one quoted word"
    )
    parser.add_argument("-f", "--file", type=Path, metavar="FILE", help="read the definition from FILE")


def _conf_key(parser: Parser, *, key: bool = True) -> None:
    parser.add_argument("kind", metavar="sources|sinks", choices=CONF_KINDS)
    parser.add_argument("type", metavar="TYPE", help="the connector type, e.g. websocket")
    if key:
        parser.add_argument("key", metavar="KEY", help="the conf group's name")


DDL_NOTES: Final = """\
The words after `create` are joined with spaces and sent as one statement (CREATE {KIND} NAME ...), as kuiper
does: quote the definition for the shell. -f FILE holds the text after CREATE {KIND}."""
RULE_NOTES: Final = "The rule JSON's id defaults to ID. -f FILE holds the rule JSON."


def build_parser() -> Parser:
    """The whole ``oort`` grammar: verbs, their sub-words and options, forms and examples."""
    root = Parser(
        prog=PROG,
        usage=f"{PROG} [--host URL] [--data DIR] [--json] COMMAND ...\n"
        f"       {PROG} COMMAND --help | {PROG} --version | {PROG} completion bash|zsh",
        description="Oort's command line: `serve` runs the daemon, `replay` runs a rule offline, and the other\n"
        "commands speak eKuiper's bin/kuiper verbs to a running daemon over its REST API.",
    )
    root.add_argument("--version", action="store_true", default=SUPPRESS, help="print Oort's version")
    root.add_subparsers(title="commands", metavar="COMMAND")
    add_global_options(root)

    serve = add_leaf(
        root,
        "serve",
        help="run the daemon (defaults: ./etc, ./data) until SIGINT or SIGTERM",
        forms=["[--etc DIR | --no-etc] [--data DIR] [--rest-host IP] [--rest-port N] [...]"],
        notes=SERVE_EPILOG,
        examples=[
            "oort serve",
            "oort serve --etc /etc/oort --data /var/lib/oort",
            "oort serve --no-etc --rest-port 0 --log-level debug",
        ],
        client=False,
    )
    _serve_options(serve)
    config = add_group(
        root,
        "config",
        help="print the daemon's settings and where each comes from",
        metavar="show",
        client=False,
    )
    show_config = add_leaf(
        config,
        "show",
        help="print the settings `serve` would run with (same options), each with where it came from",
        forms=["[--etc DIR | --no-etc] [--rest-host IP] [--rest-port N] [...] (the options of serve)"],
        notes=SERVE_EPILOG,
        examples=["oort config show", "OORT__BASIC__RESTPORT=9090 oort config show --etc /etc/oort"],
        client=False,
    )
    _serve_options(show_config)
    finish_group(config)

    create = add_group(root, "create", help="create a stream, table, rule or conf key", metavar="KIND")
    for kind, example in (
        (
            "stream",
            """sensors '(temperature FLOAT, id STRING) WITH (TYPE="memory", DATASOURCE="demo/sensors")'""",
        ),
        (
            "table",
            """devices '(id STRING, room STRING) WITH (TYPE="memory", DATASOURCE="demo/rooms", KEY="id")'""",
        ),
    ):
        _definition(
            add_leaf(
                create,
                kind,
                help=f"declare a {kind} (eKuiper's {kind} DDL)",
                forms=["NAME '<fields> WITH (...)'", "-f FILE"],
                notes=DDL_NOTES.format(KIND=kind.upper()),
                examples=[f"oort create {kind} {example}", f"oort create {kind} -f {kind}.sql"],
            ),
            "NAME",
            optional=True,
        )
    _definition(
        add_leaf(
            create,
            "rule",
            help="create a rule and start it",
            forms=["ID '<rule json>'", "ID -f FILE"],
            notes=RULE_NOTES,
            examples=[
                """oort create rule hot '{"sql": "SELECT * FROM sensors WHERE temperature > 20", """
                """"actions": [{"log": {}}]}'""",
                "oort create rule hot -f hot.json",
            ],
        ),
        "ID",
    )
    confkey = add_leaf(
        create,
        "confkey",
        help="save a conf group (KEY) of a source or sink type, in the data folder over etc/",
        forms=["sources|sinks TYPE KEY '<json>'"],
        examples=["""oort create confkey sources websocket feed '{"addr": "127.0.0.1:8080"}'"""],
    )
    _conf_key(confkey)
    confkey.add_argument("words", metavar="JSON", nargs="+", help="the group's properties as a JSON object")
    finish_group(create)

    show = add_group(root, "show", help="list the streams, tables, rules or conf groups", metavar="WHAT")
    for plural in ("streams", "tables"):
        add_leaf(show, plural, help=f"list the {plural}' names", examples=[f"oort show {plural}"])
    add_leaf(
        show,
        "rules",
        help="list the rules with their status and tags",
        notes="The table is cut to the terminal's width ($COLUMNS); --json prints every rule whole.",
        examples=["oort show rules", "oort show rules --json"],
    )
    _conf_key(
        add_leaf(
            show,
            "confkeys",
            help="print the conf groups of a source or sink type as JSON",
            forms=["sources|sinks TYPE"],
            examples=["oort show confkeys sources websocket"],
        ),
        key=False,
    )
    finish_group(show)

    describe = add_group(
        root, "describe", help="print a stream's, table's or rule's definition", metavar="KIND"
    )
    for kind, name, example in (
        ("stream", "NAME", "sensors"),
        ("table", "NAME", "devices"),
        ("rule", "ID", "hot"),
    ):
        leaf = add_leaf(
            describe,
            kind,
            help=f"print a {kind}'s definition as JSON",
            forms=[name],
            examples=[f"oort describe {kind} {example}"],
        )
        leaf.add_argument("name", metavar=name)
    finish_group(describe)

    drop = add_group(root, "drop", help="delete a stream, table, rule or conf key", metavar="KIND")
    for kind, example in (("stream", "sensors"), ("table", "devices")):
        leaf = add_leaf(
            drop,
            kind,
            help=f"delete a {kind}; -force even when rules use it",
            forms=["NAME [-force]"],
            examples=[f"oort drop {kind} {example}", f"oort drop {kind} {example} -force"],
        )
        leaf.add_argument("name", metavar="NAME")
        leaf.add_argument("-force", "--force", action="store_true", help="drop it even when rules use it")
    add_leaf(
        drop, "rule", help="stop and delete a rule", forms=["ID"], examples=["oort drop rule hot"]
    ).add_argument("name", metavar="ID")
    _conf_key(
        add_leaf(
            drop,
            "confkey",
            help="delete a conf group of a source or sink type",
            forms=["sources|sinks TYPE KEY"],
            examples=["oort drop confkey sources websocket feed"],
        )
    )
    finish_group(drop)

    for verb, what, more in (
        ("start", "start a stopped rule", ""),
        ("stop", "stop a rule", " (it stays defined: start rule starts it again)"),
        ("restart", "restart a rule", ""),
        ("getstatus", "print a rule's status and metrics", ": records in/out per source, operator and sink"),
        ("gettopo", "print a rule's topology", ": its sources, operators and sinks"),
    ):
        group = add_group(root, verb, help=what, metavar="rule")
        add_leaf(
            group, "rule", help=what + more, forms=["ID"], examples=[f"oort {verb} rule hot"]
        ).add_argument("name", metavar="ID")
        finish_group(group)
    validate = add_group(root, "validate", help="check a rule without creating it", metavar="rule")
    _definition(
        add_leaf(
            validate,
            "rule",
            help="check a rule without creating it: its SQL, sources and actions",
            forms=["ID '<rule json>'", "ID -f FILE"],
            notes=RULE_NOTES,
            examples=[
                """oort validate rule hot '{"sql": "SELECT * FROM sensors", "actions": [{"log": {}}]}'""",
                "oort validate rule hot -f hot.json",
            ],
        ),
        "ID",
    )
    finish_group(validate)
    imports = add_group(
        root, "import", help="create the streams, tables and rules of a ruleset", metavar="ruleset"
    )
    add_leaf(
        imports,
        "ruleset",
        help="create the streams, tables and rules of a ruleset file (from export ruleset)",
        forms=["-f FILE"],
        examples=["oort import ruleset -f ruleset.json"],
    ).add_argument("-f", "--file", type=Path, metavar="FILE", required=True, help="the ruleset JSON")
    finish_group(imports)
    exports = add_group(
        root, "export", help="write every stream, table and rule to a file", metavar="ruleset"
    )
    add_leaf(
        exports,
        "ruleset",
        help="write every stream, table and rule to FILE, as a ruleset (for import ruleset)",
        forms=["FILE"],
        examples=["oort export ruleset ruleset.json"],
    ).add_argument("file", type=Path, metavar="FILE")
    finish_group(exports)

    add_leaf(
        root,
        "query",
        help="interactive: each line is a SELECT run until Ctrl-C",
        notes="Each line typed is a SELECT, run as a temporary rule whose rows print as they arrive, until Ctrl-C\n"
        "(back to the prompt); quit, exit or the end of the input leaves.",
        examples=["oort query", "oort query --host http://127.0.0.1:9090"],
    )
    replay = add_leaf(
        root,
        "replay",
        help="run a rule offline on a virtual clock, printing its emissions",
        forms=["--ddl DDL.sql --rule RULE.json --input EVENTS.jsonl [--clock-start MS]"],
        notes='Each input line is {"stream": NAME, "ts": MS, "data": {...}}; the DDL is the one you deploy (any\n'
        "source type reads the recording). Nothing is sent to a daemon.",
        examples=[
            "oort replay --ddl docs/examples/replay/ddl.sql --rule docs/examples/replay/rule.json"
            " --input docs/examples/replay/events.jsonl"
        ],
        client=False,
    )
    for flag, metavar, what in (
        ("--ddl", "DDL.sql", "the CREATE STREAM and CREATE TABLE statements"),
        ("--rule", "RULE.json", "the rule (JSON or TOML, as in etc/rules)"),
        ("--input", "EVENTS.jsonl", "the recorded events, one JSON object a line"),
    ):
        replay.add_argument(flag, metavar=metavar, type=Path, required=True, help=what)
    replay.add_argument("--clock-start", metavar="MS", help="the virtual clock's start, epoch milliseconds")

    add_leaf(
        root,
        "completion",
        help="print a shell completion script for oort (bash or zsh)",
        forms=["bash|zsh"],
        notes='bash: add  eval "$(oort completion bash)"  to ~/.bashrc.\n'
        'zsh: add  eval "$(oort completion zsh)"  to ~/.zshrc, after compinit.',
        examples=['eval "$(oort completion bash)"', "oort completion zsh > ~/.oort-completion.zsh"],
        client=False,
    ).add_argument("shell", metavar="bash|zsh", choices=("bash", "zsh"))
    add_leaf(
        root,
        "help",
        help="print the help of a command (as COMMAND --help)",
        forms=["[COMMAND ...]"],
        examples=["oort help create rule"],
        client=False,
    ).add_argument("words", metavar="COMMAND", nargs="*")
    add_leaf(
        root, "version", help="print Oort's version (as --version)", examples=["oort version"], client=False
    )

    lines = "\n".join(f"  {line}" for line in full_forms(root))
    root.epilog = f"commands in full:\n{lines}\n\n{ROOT_NOTES}"
    return root
