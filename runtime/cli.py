"""The ``oort`` command: ``serve`` runs the daemon; eKuiper's CLI verbs talk to a running daemon over REST.

The verbs keep ``bin/kuiper``'s syntax (eKuiper docs api/cli/overview.md; quoting as in
sqls/lexical_elements.md): ``create stream demo '(...) WITH (...)'`` joins the words after ``create`` with
single spaces and sends the text as DDL. The grammar is argparse's (``runtime.cli_verbs``), which gives each
verb its ``--help`` and ``oort completion`` its script; this module runs what was parsed.

The engine is imported only by the verbs that run it (``serve``, ``config show``, ``replay``): the others
are a REST call, and ``oort --help`` or ``oort show rules`` must not pay for importing it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from runtime.cli_output import pretty, print_out, table, terminal_width
from runtime.cli_parser import DEFAULT_HOST, HOST_ENV, PROG, Parser, UsageError
from runtime.cli_verbs import build_parser
from runtime.errors import CliFailure, CliUsageError

# Seconds per REST call; stopping a rule waits for its sinks, which the engine bounds well below this.
TIMEOUT: Final = 60.0


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


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliFailure(f"cannot read {path}: {exc.strerror or exc}") from exc


def _segment(value: str) -> str:
    return quote(value, safe="")


def _text(args: argparse.Namespace) -> str:
    """The definition given as kuiper's words after the name or id, or in the file of ``-f``."""
    if args.file is not None:
        if args.words:
            raise CliUsageError("give the definition or -f FILE, not both")
        return _read(args.file)
    if not args.words:
        raise CliUsageError("the definition is missing: give it after the id, or -f FILE")
    return " ".join(args.words)  # kuiper sends the words as one text; the quotes were for the shell


def _create_ddl(client: _Client, args: argparse.Namespace) -> str:
    kind = args.command.split()[1]
    if args.file is not None and args.name is None and not args.words:
        sql = f"CREATE {kind.upper()} {_read(args.file)}"
    elif args.file is None and args.name is not None:
        sql = " ".join(["create", kind, args.name, *args.words])
    else:
        raise CliUsageError("expected create stream|table NAME '<definition>' or create stream|table -f FILE")
    return client.text("POST", f"/{kind}s", {"sql": sql})


def _create_rule(client: _Client, args: argparse.Namespace) -> str:
    text = _text(args)
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None  # sent as is: the server answers "invalid rule json: ..."
    if isinstance(doc, dict):
        doc.setdefault("id", args.name)
        raw = json.dumps(doc).encode("utf-8")
    else:
        raw = text.encode("utf-8")
    reply = client.text("POST", "/rules", raw=raw)
    return f"{reply.removesuffix('.')}, please use '{PROG} getstatus rule {args.name}' command to get rule status."


def _show_names(client: _Client, args: argparse.Namespace) -> str:
    plural = args.command.split()[1]
    names = client.json("GET", f"/{plural}")
    if client.as_json:
        return pretty(names)
    return "\n".join(names) if names else f"No {plural[:-1]} definitions are found."


def _show_rules(client: _Client, args: argparse.Namespace) -> str:
    rules = client.json("GET", "/rules")
    if client.as_json:
        return pretty(rules)  # whole, whatever the terminal: a program reads it
    if not rules:
        return "No rule definitions are found."
    rows = [(r["id"], r["status"], ",".join(r.get("tags") or [])) for r in rules]
    return table(("ID", "STATUS", "TAGS"), rows, terminal_width())


def _describe(client: _Client, args: argparse.Namespace) -> str:
    kind = args.command.split()[1]
    return pretty(client.json("GET", f"/{kind}s/{_segment(args.name)}"))


def _drop(client: _Client, args: argparse.Namespace) -> str:
    kind = args.command.split()[1]
    query = "?force=true" if getattr(args, "force", False) else ""
    return client.text("DELETE", f"/{kind}s/{_segment(args.name)}{query}")


def _rule_action(client: _Client, args: argparse.Namespace) -> str:
    verb, path = args.command.split()[0], f"/rules/{_segment(args.name)}"
    if verb == "getstatus":
        return client.text("GET", f"{path}/status")
    if verb == "gettopo":
        return pretty(client.json("GET", f"{path}/topo"))
    return client.text("POST", f"{path}/{verb}")


def _validate(client: _Client, args: argparse.Namespace) -> str:
    text = _text(args)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CliFailure(f"invalid rule json: {exc}") from exc
    if isinstance(doc, dict):
        doc.setdefault("id", args.name)
    return client.text("POST", "/rules/validate", doc)


def _import(client: _Client, args: argparse.Namespace) -> str:
    return client.text("POST", "/ruleset/import", {"content": _read(args.file)})


def _export(client: _Client, args: argparse.Namespace) -> str:
    content = client.call("POST", "/ruleset/export")
    try:
        args.file.write_bytes(content)
    except OSError as exc:
        raise CliFailure(f"cannot write {args.file}: {exc.strerror or exc}") from exc
    return f"ruleset exported to {args.file}"


def _confkey_path(args: argparse.Namespace) -> str:
    return f"/metadata/{args.kind}/{_segment(args.type)}/confKeys/{_segment(args.key)}"


def _create_confkey(client: _Client, args: argparse.Namespace) -> str:
    client.call("PUT", _confkey_path(args), raw=" ".join(args.words).encode("utf-8"))
    return f"conf key {args.key} of {args.kind} {args.type} is saved."


def _show_confkeys(client: _Client, args: argparse.Namespace) -> str:
    return pretty(client.json("GET", f"/metadata/{args.kind}/yaml/{_segment(args.type)}"))


def _drop_confkey(client: _Client, args: argparse.Namespace) -> str:
    client.call("DELETE", _confkey_path(args))
    return f"conf key {args.key} of {args.kind} {args.type} is dropped."


def _query(client: _Client, args: argparse.Namespace) -> str:
    """kuiper's interactive ``query``: each line is a SELECT whose rows print as they come, until Ctrl-C."""
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


# The verbs that are one REST exchange (or, for query, a few), by their words as parsed.
CLIENT_VERBS: Final[dict[str, Callable[[_Client, argparse.Namespace], str]]] = {
    "create stream": _create_ddl,
    "create table": _create_ddl,
    "create rule": _create_rule,
    "create confkey": _create_confkey,
    "show streams": _show_names,
    "show tables": _show_names,
    "show rules": _show_rules,
    "show confkeys": _show_confkeys,
    "describe stream": _describe,
    "describe table": _describe,
    "describe rule": _describe,
    "drop stream": _drop,
    "drop table": _drop,
    "drop rule": _drop,
    "drop confkey": _drop_confkey,
    **{f"{verb} rule": _rule_action for verb in ("start", "stop", "restart", "getstatus", "gettopo")},
    "validate rule": _validate,
    "import ruleset": _import,
    "export ruleset": _export,
    "query": _query,
}


def _serve_options(args: argparse.Namespace) -> tuple[Path | None, Path, dict[str, Any]]:
    """The folders and settings of ``serve`` and ``config show``: ``--etc``/``--no-etc``, ``--data`` and the
    setting flags (``runtime.config.overrides.SERVE_FLAGS``) as dotted keys."""
    from runtime.config.overrides import SERVE_FLAGS  # lazily: the client verbs stay light

    settings: dict[str, Any] = {}
    for flag, key in SERVE_FLAGS.items():
        value = getattr(args, flag.removeprefix("--").replace("-", "_"), None)
        if value is None:
            continue
        if flag.endswith("-port"):
            if not value.isdigit():
                raise CliUsageError(f"{flag} needs a port number, got {value!r}")
            value = int(value)
        settings[key] = value
    data = getattr(args, "data", Path("data"))
    if getattr(args, "no_etc", False):
        return None, data, settings
    etc = getattr(args, "etc", None)
    if etc is None:  # ./etc of a checkout or a deployment, else the folder shipped with Oort
        from runtime.config.load import shipped_etc

        # A ./etc folder is the user's even without oort.toml: then it is an error, not the shipped defaults.
        etc = Path("etc") if Path("etc").is_dir() else shipped_etc()
    return etc, data, settings


def _serve(args: argparse.Namespace) -> int:
    etc, data, settings = _serve_options(args)
    from runtime import daemon  # lazily: the client verbs must not pay for importing the whole engine

    return daemon.main(etc_dir=etc, data_dir=data, flags=settings)


def _config_show(args: argparse.Namespace) -> int:
    etc, _, settings = _serve_options(args)
    from runtime.config.overrides import load_layered, show
    from runtime.errors import ConfigError

    if etc is not None and not (etc / "oort.toml").is_file():
        raise CliFailure(f"oort: no oort.toml in {etc} (give --etc DIR, or --no-etc for the defaults)")
    try:
        print_out(show(load_layered(etc, os.environ, settings)).rstrip("\n"))
    except ConfigError as exc:
        raise CliFailure(f"oort: {exc.message}") from exc
    return 0


def _replay(args: argparse.Namespace) -> int:
    start = args.clock_start
    if start is not None and not start.isdigit():
        raise CliUsageError("--clock-start must be epoch milliseconds")
    from runtime.errors import EngineError
    from runtime.tools import replay  # lazily, like serve: it imports the engine

    try:
        replay.run_cli(args.ddl, args.rule, args.input, int(start) if start else None, emit=print)
    except (OSError, ValueError, EngineError) as exc:
        raise CliFailure(f"replay: {exc}") from exc
    return 0


def _completion(args: argparse.Namespace, parser: Parser) -> int:
    from runtime.cli_completion import script

    print_out(script(parser, args.shell).rstrip("\n"))
    return 0


def _version() -> int:
    from runtime.config import VERSION

    print_out(f"{PROG} {VERSION}")
    return 0


def _token(host: str, data_dir: Path) -> str | None:
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
        return read_token(data_dir / TOKEN_FILE)
    except OSError as exc:
        raise CliFailure(f"cannot read the API token: {exc}") from exc


def _run(parser: Parser, argv: list[str]) -> int:
    args, extras = parser.parse_known_args(argv)
    verb: Parser = getattr(args, "parser", parser)
    if extras:
        what = "unknown option" if extras[0].startswith("-") else "unexpected argument"
        raise UsageError(verb, f"{what} {extras[0]}")
    command: str | None = getattr(args, "command", None)
    if getattr(args, "version", False) or command == "version":
        return _version()
    if command is None:  # `oort` alone: what it can do, and a failure for a script that lost its verb
        parser.print_help(sys.stderr)
        return 2
    if command == "help":
        return _run(parser, [*args.words, "--help"])
    try:
        if command == "serve":
            return _serve(args)
        if command == "config show":
            return _config_show(args)
        if command == "replay":
            return _replay(args)
        if command == "completion":
            return _completion(args, parser)
        host = getattr(args, "host", None) or os.environ.get(HOST_ENV) or DEFAULT_HOST
        if "://" not in host:
            host = "http://" + host
        token = _token(host, getattr(args, "data", Path("data")))
        client = _Client(host, as_json=getattr(args, "json", False), token=token)
        output = CLIENT_VERBS[command](client, args)
    except UsageError:
        raise
    except CliUsageError as exc:  # a verb's own check (a port, a missing definition): its usage follows
        raise UsageError(verb, str(exc)) from exc
    if output:
        print_out(output)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one ``oort`` command. Returns the exit code: 0 ok, 1 failed (message on stderr), 2 bad usage."""
    parser = build_parser()
    try:
        return _run(parser, list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help printed its text; argparse ends there with exit()
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        hint = f"{exc.parser.prog} --help tells more."
        print(f"{exc}\n\n{exc.parser.format_usage()}{hint}", file=sys.stderr)
        return 2
    except CliFailure as exc:
        print(exc, file=sys.stderr)
        return 1
