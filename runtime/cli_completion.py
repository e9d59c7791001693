"""``oort completion bash|zsh``: a shell completion script generated from the command's argparse parsers.

The script is data plus one walker. The data are shell functions generated from the parser tree: the
sub-commands of each command path (``create`` → stream table rule confkey), its options, what an option's
value is (a file, a directory, or a word nothing can be proposed for) and what each positional is (a choice
such as sources|sinks, or a file). The walker, ``__oort_complete``, reads the words typed so far the way
argparse would (sub-commands deepen the path, an option that takes a value swallows the next word) and
prints what to propose: ``words W...``, ``files``, ``dirs`` or nothing. It is written in the common subset of
bash and zsh, so each shell only adds a few lines turning that answer into its own completion calls, and a
test can run the walker in both shells directly.

No completion library is used: the parser holds all there is to know, and a generated script has no
dependency to install and no Python start-up per key press.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from runtime.cli_parser import subcommands

# Every word that goes into the script: plain enough to need no quoting in a shell case pattern or list.
_SAFE: Final = re.compile(r"[A-Za-z0-9_.-]+")

_WALKER: Final = r"""
# __oort_complete CURRENT WORD...: what to propose for CURRENT, the words before it (after "oort") given.
__oort_complete() {
    local cur=$1 node= expect= npos=0 w subs
    shift
    for w in "$@"; do
        if [ -n "$expect" ]; then expect=; continue; fi  # the value of the option before it
        case $w in
            -*=*) ;;
            -*) expect=$(__oort_option_value "$node" "$w") ;;
            *)
                subs=" $(__oort_subcommands "$node") "
                case $subs in
                    *" $w "*) node=${node:+$node }$w; npos=0 ;;
                    *) npos=$((npos + 1)) ;;
                esac
                ;;
        esac
    done
    if [ -n "$expect" ]; then
        [ "$expect" = value ] || echo "$expect"
        return
    fi
    case $cur in
        -*) echo "words $(__oort_options "$node")"; return ;;
    esac
    subs=$(__oort_subcommands "$node")
    if [ -n "$subs" ]; then echo "words $subs"; return; fi
    __oort_positional "$node" "$npos"
}
"""

_BASH: Final = r"""
_oort() {
    local cur=${COMP_WORDS[COMP_CWORD]} answer IFS=$'\n'
    answer=$(__oort_complete "$cur" "${COMP_WORDS[@]:1:COMP_CWORD-1}")
    case $answer in
        "words "*) IFS=$' \t\n'; COMPREPLY=($(compgen -W "${answer#words }" -- "$cur")) ;;
        files) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
        dirs) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
        *) COMPREPLY=() ;;
    esac
}
complete -F _oort oort
"""

_ZSH: Final = r"""
_oort() {
    local answer
    local -a candidates
    answer=$(__oort_complete "${words[CURRENT]}" "${(@)words[2,CURRENT-1]}")
    case $answer in
        "words "*) candidates=(${=${answer#words }}); compadd -- "${(@)candidates}" ;;
        files) _files ;;
        dirs) _directories ;;
    esac
}
if (( $+functions[compdef] )); then
    compdef _oort oort
else
    print -u2 "oort completion: load zsh's completion system first (autoload -Uz compinit && compinit)"
fi
"""


def _nodes(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the tree with its command path (``""``, ``"create"``, ``"create stream"``, ...)."""
    yield path, parser
    for name, child in subcommands(parser).items():
        yield from _nodes(child, f"{path} {name}".strip())


def _value_kind(action: argparse.Action) -> str:
    """What an option's value or a positional is: ``files``, ``dirs``, ``words A B`` or ``value``."""
    if action.choices is not None and not isinstance(action.choices, dict):
        return "words " + " ".join(_safe(str(choice)) for choice in action.choices)
    if action.type is Path:
        return "dirs" if action.metavar == "DIR" else "files"
    return "value"


def _safe(word: str) -> str:
    if not _SAFE.fullmatch(word):
        raise ValueError(f"{word!r} cannot go into a completion script unquoted")
    return word


def _case(function: str, comment: str, arms: list[tuple[str, str]], *, arguments: int = 1) -> str:
    """A shell function echoing the answer of the first arm whose pattern (shell syntax) matches its arguments
    joined by a space.

    ``"$1 $2"`` rather than ``"$*"``, whose separator is the caller's IFS (bash's driver changes it).
    """
    subject = "$1" if arguments == 1 else "$1 $2"
    lines = [f"# {comment}", f"{function}() {{", f'    case "{subject}" in']
    lines += [f'        {pattern}) echo "{answer}" ;;' for pattern, answer in arms]
    lines += ["    esac", "}"]
    return "\n".join(lines)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``parser`` (the ``oort`` command) for ``shell``, ``bash`` or ``zsh``."""
    command_arms: list[tuple[str, str]] = []
    option_arms: list[tuple[str, str]] = []
    values: dict[str, dict[str, str]] = {}  # option → command path → what its value is
    positional_arms: list[tuple[str, str]] = []
    for path, node in _nodes(parser):
        key = " ".join(_safe(word) for word in path.split())
        names = list(subcommands(node))
        if names:
            command_arms.append((f'"{key}"', " ".join(_safe(name) for name in names)))
        flags = [_safe(flag) for action in node._actions for flag in action.option_strings]
        option_arms.append((f'"{key}"', " ".join(flags)))
        for action in node._actions:
            if action.option_strings and action.nargs != 0:  # an option with a value (store_true's is 0)
                for flag in action.option_strings:
                    values.setdefault(flag, {})[key] = _value_kind(action)
        index = 0
        for action in node._actions:
            if action.option_strings or isinstance(action, argparse._SubParsersAction):
                continue
            kind = _value_kind(action)
            if kind != "value" and action.nargs in (None, "?"):
                positional_arms.append((f'"{key} {index}"', kind))
            index += 1
    # An option whose value is the same kind under every command (--host, --data, -f) gets one arm.
    value_arms: list[tuple[str, str]] = []
    for flag, kinds in values.items():
        if len(set(kinds.values())) == 1:
            value_arms.append((f'*" {flag}"', next(iter(kinds.values()))))
        else:
            value_arms += [(f'"{key} {flag}"', kind) for key, kind in kinds.items()]
    parts = [
        f"# {shell} completion for oort, generated by `oort completion {shell}` from its argument parser.",
        _case(
            "__oort_subcommands", "__oort_subcommands PATH: the sub-commands of a command path", command_arms
        ),
        _case("__oort_options", "__oort_options PATH: the options of a command path", option_arms),
        _case(
            "__oort_option_value",
            "__oort_option_value PATH OPTION: what the option's value is (nothing for a flag)",
            value_arms,
            arguments=2,
        ),
        _case(
            "__oort_positional",
            "__oort_positional PATH INDEX: what to propose for a positional",
            positional_arms,
            arguments=2,
        ),
        _WALKER.strip("\n"),
        {"bash": _BASH, "zsh": _ZSH}[shell].strip("\n"),
    ]
    return "\n\n".join(parts) + "\n"
