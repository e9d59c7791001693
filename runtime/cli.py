"""The ``oort`` command: ``serve`` runs the daemon; eKuiper's CLI verbs talk to a running daemon over REST.

The verbs keep ``bin/kuiper``'s syntax (eKuiper docs api/cli/overview.md; quoting as in
sqls/lexical_elements.md): ``create stream demo '(...) WITH (...)'``
joins the words after the program name with single spaces and sends the text as DDL.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from runtime.errors import CliFailure, CliUsageError

DEFAULT_HOST: Final = "http://127.0.0.1:9081"
HOST_ENV: Final = "OORT_HOST"  # the daemon's URL when --host is not given
# Seconds per REST call; stopping a rule waits for its sinks, which the engine bounds well below this.
TIMEOUT: Final = 60.0

USAGE: Final = """\
usage: oort [--host URL] [--data DIR] COMMAND ...        oort --version        oort COMMAND --help

  serve [--etc DIR] [--data DIR] [...]              run the daemon (defaults: ./etc, ./data); serve --help
  config show [--etc DIR] [...]                     the daemon's settings and where each comes from
  create stream NAME '<fields> WITH (...)'          create stream -f FILE
  create table NAME '<fields> WITH (...)'           create table -f FILE
  create rule ID '<rule json>'                      create rule ID -f FILE
  show streams | show tables | show rules
  describe stream NAME | describe table NAME        describe rule ID
  drop stream NAME [-force] | drop table NAME [-force] | drop rule ID
  start rule ID | stop rule ID | restart rule ID
  getstatus rule ID | gettopo rule ID
  validate rule ID '<rule json>'                    validate rule ID -f FILE
  import ruleset -f FILE                            export ruleset FILE
  create confkey sources|sinks TYPE KEY '<json>'    show confkeys sources|sinks TYPE
  drop confkey sources|sinks TYPE KEY
  query                                             interactive: each line is a SELECT run until Ctrl-C
  replay --ddl DDL.sql --rule RULE.json --input EVENTS.jsonl [--clock-start MS]
                                                    run a rule offline on a mock clock; one JSON array per emission

-f FILE: for a stream or table, the file holds the text after CREATE STREAM|TABLE, as in eKuiper
(`demo (temp FLOAT) WITH (TYPE="memory", DATASOURCE="t")`); for a rule, the rule JSON.

--json prints machine-readable JSON instead of tables (show rules).

Exit codes: 0 done, 1 the daemon refused or could not be reached (its message on stderr), 2 bad usage.

--host (also after the command) defaults to $OORT_HOST, else http://127.0.0.1:9081 (the daemon's REST API). The API token is taken from OORT_TOKEN,
else (for a daemon on this machine) from DIR/auth/token, DIR being --data (default ./data).
"""


class _Client:
    """Blocking REST calls to one daemon (stdlib only; the CLI needs no event loop)."""

    def __init__(self, host: str, *, as_json: bool = False, token: str | None = None) -> None:
        self.host = host.rstrip("/")
        self.as_json = as_json  # --json: machine-readable output instead of tables
        # The daemon is usually on loopback: an http_proxy from the environment must not capture the calls.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._token = token

    def _request(self, method: str, path: str, data: bytes | None) -> urllib.request.Request:
        request = urllib.request.Request(self.host + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        return request

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> bytes:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode("utf-8"))
        request = self._request(method, path, data)
        try:
            with self._opener.open(request, timeout=TIMEOUT) as reply:
                result: bytes = reply.read()
                return result
        except urllib.error.HTTPError as err:
            raise CliFailure(_error_message(err.read(), err.code)) from err
        except urllib.error.URLError as err:
            raise CliFailure(f"cannot connect to {self.host}: {err.reason}") from err
        except OSError as err:  # timeouts and resets after the connection was made
            raise CliFailure(f"request to {self.host} failed: {err}") from err

    def stream(self, method: str, path: str, body: Any) -> Iterator[str]:
        """The lines of a streamed reply as they arrive (closing the iterator closes the connection)."""
        request = self._request(method, path, json.dumps(body).encode("utf-8"))
        try:
            with self._opener.open(request) as reply:
                for raw in reply:
                    line = raw.decode("utf-8", "replace").strip()
                    if line:
                        yield line
        except urllib.error.HTTPError as err:
            raise CliFailure(_error_message(err.read(), err.code)) from err
        except urllib.error.URLError as err:
            raise CliFailure(f"cannot connect to {self.host}: {err.reason}") from err

    def text(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> str:
        return self.call(method, path, body, raw=raw).decode("utf-8", "replace")

    def json(self, method: str, path: str) -> Any:
        return json.loads(self.call(method, path))


def _error_message(body: bytes, status: int) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])
    return body.decode("utf-8", "replace").strip() or f"HTTP {status}"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliFailure(f"cannot read {path}: {exc.strerror or exc}") from exc


def _segment(value: str) -> str:
    return quote(value, safe="")


def _create(client: _Client, args: list[str]) -> str:
    match args:
        case ["create", ("stream" | "table") as kind, "-f", file]:
            sql = f"CREATE {kind.upper()} {_read(file)}"
        case ["create", ("stream" | "table") as kind, _, *_]:
            sql = " ".join(args)  # kuiper sends the words as one statement; the quotes were for the shell
        case ["create", "rule", rule_id, "-f", file]:
            return _create_rule(client, rule_id, _read(file))
        case ["create", "rule", rule_id, first, *rest]:
            return _create_rule(client, rule_id, " ".join([first, *rest]))
        case _:
            raise CliUsageError(
                "create stream|table NAME '<definition>' | create rule ID '<json>' (or -f FILE)"
            )
    return client.text("POST", f"/{kind}s", {"sql": sql})


def _create_rule(client: _Client, rule_id: str, text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None  # sent as is: the server answers "invalid rule json: ..."
    if isinstance(doc, dict):
        doc.setdefault("id", rule_id)
        raw = json.dumps(doc).encode("utf-8")
    else:
        raw = text.encode("utf-8")
    reply = client.text("POST", "/rules", raw=raw)
    return (
        f"{reply.removesuffix('.')}, please use 'oort getstatus rule {rule_id}' command to get rule status."
    )


def _show(client: _Client, args: list[str]) -> str:
    match args:
        case ["show", ("streams" | "tables") as plural]:
            names = client.json("GET", f"/{plural}")
            return "\n".join(names) if names else f"No {plural[:-1]} definitions are found."
        case ["show", "rules"]:
            rules = client.json("GET", "/rules")
            if client.as_json:
                return _pretty(rules)
            return _table(rules) if rules else "No rule definitions are found."
        case _:
            raise CliUsageError("show streams | show tables | show rules")


def _table(rules: list[dict[str, Any]]) -> str:
    rows = [("ID", "STATUS", "TAGS")] + [(r["id"], r["status"], ",".join(r.get("tags") or [])) for r in rules]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows)


def _describe(client: _Client, args: list[str]) -> str:
    match args:
        case ["describe", ("stream" | "table") as kind, name]:
            return _pretty(client.json("GET", f"/{kind}s/{_segment(name)}"))
        case ["describe", "rule", rule_id]:
            return _pretty(client.json("GET", f"/rules/{_segment(rule_id)}"))
        case _:
            raise CliUsageError("describe stream|table NAME | describe rule ID")


def _drop(client: _Client, args: list[str]) -> str:
    match args:
        case ["drop", ("stream" | "table") as kind, name, *flags] if set(flags) <= {"-force", "--force"}:
            query = "?force=true" if flags else ""
            return client.text("DELETE", f"/{kind}s/{_segment(name)}{query}")
        case ["drop", "rule", rule_id]:
            return client.text("DELETE", f"/rules/{_segment(rule_id)}")
        case _:
            raise CliUsageError("drop stream|table NAME [-force] | drop rule ID")


def _rule_action(client: _Client, args: list[str]) -> str:
    match args:
        case [("start" | "stop" | "restart") as verb, "rule", rule_id]:
            return client.text("POST", f"/rules/{_segment(rule_id)}/{verb}")
        case ["getstatus", "rule", rule_id]:
            return client.text("GET", f"/rules/{_segment(rule_id)}/status")
        case ["gettopo", "rule", rule_id]:
            return _pretty(client.json("GET", f"/rules/{_segment(rule_id)}/topo"))
        case _:
            raise CliUsageError("start|stop|restart|getstatus|gettopo rule ID")


def _validate(client: _Client, args: list[str]) -> str:
    match args:
        case ["validate", "rule", rule_id, "-f", file]:
            text = _read(file)
        case ["validate", "rule", rule_id, first, *rest]:
            text = " ".join([first, *rest])
        case _:
            raise CliUsageError("validate rule ID '<json>' | validate rule ID -f FILE")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CliFailure(f"invalid rule json: {exc}") from exc
    if isinstance(doc, dict):
        doc.setdefault("id", rule_id)
    return client.text("POST", "/rules/validate", doc)


def _ruleset(client: _Client, args: list[str]) -> str:
    match args:
        case ["import", "ruleset", "-f", file]:
            return client.text("POST", "/ruleset/import", {"content": _read(file)})
        case ["export", "ruleset", file]:
            content = client.call("POST", "/ruleset/export")
            try:
                Path(file).write_bytes(content)
            except OSError as exc:
                raise CliFailure(f"cannot write {file}: {exc.strerror or exc}") from exc
            return f"ruleset exported to {file}"
        case _:
            raise CliUsageError("import ruleset -f FILE | export ruleset FILE")


def _confkey(client: _Client, args: list[str]) -> str:
    match args:
        case ["create", "confkey", ("sources" | "sinks") as kind, type_name, key, first, *rest]:
            path = f"/metadata/{kind}/{_segment(type_name)}/confKeys/{_segment(key)}"
            client.call("PUT", path, raw=" ".join([first, *rest]).encode("utf-8"))
            return f"conf key {key} of {kind} {type_name} is saved."
        case ["show", "confkeys", ("sources" | "sinks") as kind, type_name]:
            return _pretty(client.json("GET", f"/metadata/{kind}/yaml/{_segment(type_name)}"))
        case ["drop", "confkey", ("sources" | "sinks") as kind, type_name, key]:
            client.call("DELETE", f"/metadata/{kind}/{_segment(type_name)}/confKeys/{_segment(key)}")
            return f"conf key {key} of {kind} {type_name} is dropped."
        case _:
            raise CliUsageError(
                "create confkey sources|sinks TYPE KEY '<json>' | show confkeys sources|sinks TYPE"
                " | drop confkey sources|sinks TYPE KEY"
            )


def _query(client: _Client, args: list[str]) -> str:
    """kuiper's interactive ``query``: each line is a SELECT whose rows print as they come, until Ctrl-C."""
    if args != ["query"]:
        raise CliUsageError("query (then type SELECT statements; quit or exit to leave)")
    interactive = sys.stdin.isatty()
    # Ctrl-C (SIGINT) is how a query ends: make sure it raises KeyboardInterrupt even when this process was
    # started with SIGINT ignored (a shell's background job, a supervisor), which Python would keep.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    while True:
        if interactive:
            print("oort > ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip().lower() in ("quit", "exit"):
            return ""
        sql = line.strip().rstrip(";")
        if not sql:
            continue
        try:
            for rows in client.stream("POST", "/query", {"sql": sql}):
                print(rows, flush=True)
        except CliFailure as exc:
            print(exc, file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            print("", flush=True)  # the query ends; back to the prompt


SERVE_USAGE: Final = """\
usage: oort serve [--etc DIR | --no-etc] [--data DIR] [--rest-host IP] [--rest-port N]
                  [--data-host IP] [--data-port N] [--log-level LEVEL]
       oort config show [the same options]

serve runs the daemon; config show prints the settings it would run with, each with where it came from.

  --etc DIR         the configuration folder holding oort.toml; it must exist. Default: ./etc when it
                    holds oort.toml, else the defaults shipped with Oort (read only: changes go to DATA)
  --no-etc          run on the built-in defaults (no streams, rules or conf groups from etc/)
  --data DIR        the data folder: definitions, state, the API token (default ./data)
  --rest-host IP    basic.restIp          --rest-port N   basic.restPort (0: any free port)
  --data-host IP    source.httpServerIp   --data-port N   source.httpServerPort
  --log-level L     basic.logLevel: debug, info, warn, error

Every key of oort.toml can also be set by an environment variable: OORT__ + section and key in capitals,
joined by __, e.g. OORT__BASIC__RESTPORT=9090 or OORT__RULE__RESTARTSTRATEGY__ATTEMPTS=3.
Precedence: flag > environment > oort.toml > default.
"""


def _serve_options(verb: str, args: list[str]) -> tuple[Path | None, Path, dict[str, Any]]:
    """``--etc``/``--no-etc``/``--data`` and the setting flags of ``serve`` and ``config show``."""
    from runtime.config.overrides import SERVE_FLAGS  # lazily: the client verbs stay light

    etc: Path | None = None
    etc_given = False
    data = Path("data")
    settings: dict[str, Any] = {}
    rest = list(args)
    while rest:
        flag, has_value, value = rest[0].partition("=")
        if flag == "--no-etc":
            etc, etc_given, rest = None, True, rest[1:]
            continue
        if flag not in ("--etc", "--data", *SERVE_FLAGS):
            raise CliUsageError(f"{verb}: unknown option {rest[0]}")
        if not has_value:
            if len(rest) < 2:
                raise CliUsageError(f"{verb}: {flag} needs a value")
            value, rest = rest[1], rest[1:]
        rest = rest[1:]
        if flag == "--etc":
            etc, etc_given = Path(value), True
        elif flag == "--data":
            data = Path(value)
        elif flag.endswith("-port"):
            if not value.isdigit():
                raise CliUsageError(f"{verb}: {flag} needs a port number, got {value!r}")
            settings[SERVE_FLAGS[flag]] = int(value)
        else:
            settings[SERVE_FLAGS[flag]] = value
    if not etc_given:  # ./etc of a checkout or a deployment, else the folder shipped with Oort
        from runtime.config.load import shipped_etc

        etc = Path("etc") if Path("etc", "oort.toml").is_file() else shipped_etc()
    return etc, data, settings


def _serve(args: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in args[1:]):
        print(SERVE_USAGE, end="")
        return 0
    etc, data, settings = _serve_options("serve", args[1:])
    from runtime import daemon  # lazily: the client verbs must not pay for importing the whole engine

    return daemon.main(etc_dir=etc, data_dir=data, flags=settings)


def _config(args: list[str]) -> int:
    if args[1:2] != ["show"] or any(arg in ("-h", "--help") for arg in args):
        print(SERVE_USAGE, end="", file=sys.stdout if "--help" in args or "-h" in args else sys.stderr)
        return 0 if "--help" in args or "-h" in args else 2
    etc, _, settings = _serve_options("config show", args[2:])
    from runtime.config.overrides import load_layered, show
    from runtime.errors import ConfigError

    if etc is not None and not (etc / "oort.toml").is_file():
        raise CliFailure(f"oort: no oort.toml in {etc} (give --etc DIR, or --no-etc for the defaults)")
    try:
        print(show(load_layered(etc, os.environ, settings)), end="")
    except ConfigError as exc:
        raise CliFailure(f"oort: {exc.message}") from exc
    return 0


def _replay(args: list[str]) -> int:
    flags = {"--ddl": "", "--rule": "", "--input": "", "--clock-start": ""}
    while args:
        flag, _, value = args[0].partition("=")
        if flag not in flags:
            raise CliUsageError(f"replay: unknown option {args[0]!r}")
        if not value:
            if len(args) < 2:
                raise CliUsageError(f"replay: {flag} needs a value")
            value, args = args[1], args[1:]
        flags[flag], args = value, args[1:]
    missing = [f for f in ("--ddl", "--rule", "--input") if not flags[f]]
    if missing:
        raise CliUsageError(f"replay: missing {', '.join(missing)}")
    start = flags["--clock-start"]
    if start and not start.isdigit():
        raise CliUsageError("replay: --clock-start must be epoch milliseconds")
    from runtime.errors import EngineError
    from runtime.tools import replay  # lazily, like serve: it imports the engine

    try:
        replay.run_cli(
            Path(flags["--ddl"]),
            Path(flags["--rule"]),
            Path(flags["--input"]),
            int(start) if start else None,
            emit=print,
        )
    except (OSError, ValueError, EngineError) as exc:
        raise CliFailure(f"replay: {exc}") from exc
    return 0


def _command_usage(verb: str) -> str:
    """The lines of ``USAGE`` about ``verb``, or all of it when none are."""
    lines = [
        line for line in USAGE.splitlines() if line.strip().startswith(verb + " ") or f"| {verb} " in line
    ]
    if not lines:
        return USAGE
    return "usage:\n" + "\n".join(lines) + "\n\n" + USAGE.split("\n\n", 2)[-1]


def _print(text: str) -> None:
    """Print, quietly giving up when the reader went away (``oort show rules | head -1``)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit: point stdout at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _global_options(args: list[str]) -> tuple[str, str, list[str]]:
    """``--host URL`` and ``--data DIR``, before the command or (for the client verbs) anywhere after it: the
    daemon's URL (default ``OORT_HOST``, else the local one), its data dir, and the other arguments."""
    options = {"--host": os.environ.get(HOST_ENV) or DEFAULT_HOST, "--data": "data"}
    rest: list[str] = []
    anywhere = False  # once the command is known: serve, config and replay have a --data of their own
    while args:
        flag, has_value, value = args[0].partition("=")
        if flag in options and (not rest or anywhere):
            if not has_value:
                if len(args) < 2:
                    raise CliUsageError(f"{flag} needs {'a URL' if flag == '--host' else 'a directory'}")
                value, args = args[1], args[1:]
            options[flag], args = value, args[1:]
            continue
        if not rest:
            anywhere = args[0] not in ("serve", "config", "replay")
        rest.append(args[0])
        args = args[1:]
    host = options["--host"]
    if "://" not in host:
        host = "http://" + host
    return host, options["--data"], rest


def _token(host: str, data_dir: str) -> str | None:
    """The API token to send: ``OORT_TOKEN``, else the local daemon's token file.

    The file is only read for a daemon on this machine: its token must not be sent to another server.
    """
    from runtime.api.tokens import TOKEN_ENV, TOKEN_FILE, is_loopback, read_token

    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        return given
    if not is_loopback(urlsplit(host).hostname or ""):
        return None
    try:
        return read_token(Path(data_dir) / TOKEN_FILE)
    except OSError as exc:
        raise CliFailure(f"cannot read the API token: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    """Run one ``oort`` command. Returns the exit code: 0 ok, 1 failed (message on stderr), 2 bad usage."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        host, data_dir, args = _global_options(args)
        if args[:1] in (["--version"], ["version"]):
            from runtime.config import VERSION

            _print(f"oort {VERSION}")
            return 0
        if args[:1] == ["help"] and len(args) > 1:
            args = [args[1], "--help"]
        if len(args) > 1 and args[0] not in ("serve", "config") and args[-1] in ("-h", "--help"):
            _print(_command_usage(args[0]).rstrip("\n"))
            return 0
        if not args or args[0] in ("-h", "--help", "help"):
            print(USAGE, end="", file=sys.stdout if args else sys.stderr)
            return 0 if args else 2
        if args[0] == "serve":
            return _serve(args)
        if args[0] == "config":
            return _config(args)
        if args[0] == "replay":
            return _replay(args[1:])
        as_json = "--json" in args
        args = [a for a in args if a != "--json"]
        client = _Client(host, as_json=as_json, token=_token(host, data_dir))
        commands = {
            "create": _create,
            "show": _show,
            "describe": _describe,
            "drop": _drop,
            "start": _rule_action,
            "stop": _rule_action,
            "restart": _rule_action,
            "getstatus": _rule_action,
            "gettopo": _rule_action,
            "validate": _validate,
            "import": _ruleset,
            "export": _ruleset,
            "query": _query,
        }
        if args[0] in ("create", "show", "drop") and len(args) > 1 and args[1] in ("confkey", "confkeys"):
            commands[args[0]] = _confkey
        command = commands.get(args[0])
        if command is None:
            raise CliUsageError(f"unknown command {args[0]!r}")
        output = command(client, args)
        if output:
            _print(output)
    except CliUsageError as exc:
        print(f"oort: {exc}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    except CliFailure as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0
