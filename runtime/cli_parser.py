"""The machinery of the ``oort`` command line on argparse; the verbs themselves are in ``runtime.cli_verbs``.

eKuiper's ``bin/kuiper`` (docs api/cli/overview.md) reads ``create stream NAME '<fields> WITH (...)'`` by joining
the words after ``create`` and sending them as DDL, so a definition is taken as a list of words
(``DEFINITION ...``) that ``runtime.cli`` joins; ``drop stream NAME -force`` has a one-dash long option, which
argparse allows. Each leaf parser carries its forms (the usage lines) and examples: the help of a group
(``oort drop --help``), the full listing of ``oort --help`` and the shell completion (``runtime.cli_completion``)
are built from the one tree of parsers, so they cannot disagree with what is parsed.

Options whose value is a path are declared with ``type=Path``: that is how the completion knows to offer file
names (or directory names, for a ``DIR``). Nothing of the engine is imported: the parser is built on every
``oort`` command, and ``oort --help`` and the client verbs must stay quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from runtime.cli_output import print_out
from runtime.errors import CliUsageError

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

PROG: Final = "oort"
DEFAULT_HOST: Final = "http://127.0.0.1:9081"
HOST_ENV: Final = "OORT_HOST"  # the daemon's URL when --host is not given
SUPPRESS: Final = argparse.SUPPRESS


class UsageError(CliUsageError):
    """The command line is wrong; ``parser`` is the verb it concerns, whose usage is printed under the message."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(f"{parser.prog}: {message}")
        self.parser = parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples keep their lines; sub-commands are listed like options, without argparse's
    heading line (the metavar), which only repeats what the list under it says."""

    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        if isinstance(action, argparse._SubParsersAction):
            return text.partition("\n")[2]
        return text

    def _iter_indented_subactions(self, action: argparse.Action) -> Generator[argparse.Action, None, None]:
        # Not indented under the (dropped) heading: argparse measures the column of the help texts without
        # that indent, and would wrap the longer command names (getstatus, completion) onto lines of their own.
        if isinstance(action, argparse._SubParsersAction):
            yield from action._get_subactions()
        else:
            yield from super()._iter_indented_subactions(action)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are exceptions and whose help survives a closed pipe.

    argparse's own ``error`` exits the interpreter; ``main(argv)`` is also called by tests and programs, so
    errors become ``UsageError`` and ``main`` returns 2. ``forms`` are the usage lines after the prog
    (``NAME [-force]``) and ``examples`` whole command lines, shown under ``examples:`` in the help.
    """

    def __init__(
        self, *args: Any, forms: Sequence[str] = (), examples: Sequence[str] = (), **kwargs: Any
    ) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs.setdefault("allow_abbrev", False)  # `-forc` must not pass for -force, nor --e for --etc
        super().__init__(*args, **kwargs)
        self.forms = list(forms)
        self.examples = list(examples)
        # A verb's options may come between its words (`create rule r1 --host H '{...}'`), as kuiper's
        # hand-written parser allowed: leaves parse "intermixed", which plain argparse gets wrong for
        # positionals of nargs "*" or "?" (they match nothing before the option and nothing is left after).
        self.intermixed = False
        self._in_intermixed = False

    def parse_known_args(  # type: ignore[override]
        self, args: Iterable[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if not self.intermixed or self._in_intermixed:
            return super().parse_known_args(args, namespace)
        # parse_known_intermixed_args calls parse_known_args twice (on Python 3.11): those calls are plain.
        self._in_intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._in_intermixed = False

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's "invalid choice: 'fly' (choose from 'serve', 'config', ...)" lists every command for a
        # typo: name the nearest command instead, or point at the help that lists them.
        if isinstance(action, argparse._SubParsersAction) and isinstance(action.choices, dict):
            names = list(action.choices)
            if value not in names:
                import difflib  # lazily: only a mistyped command needs it

                close = difflib.get_close_matches(str(value), names, n=1)
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
                elif self.prog == PROG:
                    hint = f" ({PROG} --help lists the commands)"
                else:
                    hint = f" (one of: {', '.join(names)})"
                raise argparse.ArgumentError(None, f"unknown command {value!r}{hint}")
        super()._check_value(action, value)

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        if file is None or file is sys.stdout:
            print_out(self.format_help().rstrip("\n"))  # `oort --help | head -1` ends quietly
        else:
            file.write(self.format_help())


def subcommands(parser: argparse.ArgumentParser) -> dict[str, Parser]:
    """The sub-commands of ``parser`` by name (none for a leaf)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and isinstance(action.choices, dict):
            return dict(action.choices)
    return {}


def full_forms(parser: Parser) -> list[str]:
    """Every usage line under ``parser``, each a whole command (``oort drop stream NAME [-force]``)."""
    children = subcommands(parser)
    if not children:
        return [f"{parser.prog} {form}".rstrip() for form in parser.forms or [""]]
    return [line for child in children.values() for line in full_forms(child)]


def _examples(parser: Parser) -> list[str]:
    children = subcommands(parser)
    if not children:
        return parser.examples
    return [line for child in children.values() for line in _examples(child)]


def _epilog(notes: str, examples: Sequence[str]) -> str:
    listing = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return f"{notes}\n\n{listing}" if notes else listing


def add_global_options(parser: Parser) -> None:
    """--host, --data and --json, taken before the command or after it (by the root and each client verb).

    Their defaults are SUPPRESS: a verb's parser would otherwise write its default over the value given
    before the command (argparse copies a sub-parser's whole namespace over its parent's).
    """
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--host",
        metavar="URL",
        default=SUPPRESS,
        help=f"the daemon's REST API (${HOST_ENV}, else {DEFAULT_HOST})",
    )
    group.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        default=SUPPRESS,
        help="the daemon's data folder, where the token of a daemon on this machine is read (./data)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=SUPPRESS,
        help="print JSON for programs instead of tables or lists",
    )


def add_group(parent: Parser, name: str, *, help: str, metavar: str, client: bool = True) -> Parser:
    """A verb with sub-words (``drop stream|table|rule|confkey``); ``finish_group`` fills in its usage."""
    parser = _commands(parent).add_parser(
        name, prog=f"{parent.prog} {name}", help=help, description=help[0].upper() + help[1:] + "."
    )
    parser.add_subparsers(title="commands", metavar=metavar, required=True)
    if client:
        add_global_options(parser)
    return parser


def add_leaf(
    parent: Parser,
    name: str,
    *,
    help: str,
    forms: Sequence[str] = ("",),
    examples: Sequence[str],
    notes: str = "",
    client: bool = True,
) -> Parser:
    """A command that takes no further sub-word: its forms become its usage, its examples its epilog.

    ``client``: a verb that talks to the daemon, so it takes the global options after the command too.
    """
    prog = f"{parent.prog} {name}"
    usage = "\n       ".join(f"{prog} {form}".rstrip() for form in forms).replace("%", "%%")
    parser = _commands(parent).add_parser(
        name,
        prog=prog,
        usage=usage,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=_epilog(notes, examples),
        forms=forms,
        examples=examples,
    )
    if client:
        add_global_options(parser)
    parser.intermixed = True
    # What runtime.cli dispatches on ("drop stream"), and the parser whose usage goes with a usage error.
    parser.set_defaults(command=prog.removeprefix(f"{PROG} "), parser=parser)
    return parser


def finish_group(group: Parser) -> None:
    """The usage of a group is every form of its leaves; its examples are theirs."""
    group.usage = "\n       ".join(full_forms(group)).replace("%", "%%")
    group.epilog = _epilog("", _examples(group))


def _commands(parent: Parser) -> argparse._SubParsersAction[Parser]:
    for action in parent._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError(f"{parent.prog} takes no sub-commands")  # a mistake in runtime.cli_verbs
