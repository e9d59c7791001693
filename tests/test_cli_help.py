"""The ``oort`` command line on argparse: every verb's ``--help``, the completion scripts, tables cut to the
terminal, kuiper's word forms, and the client verbs' imports kept light.

The help and completion checks run the real CLI (``python -m runtime``) as subprocesses; the table cut runs
against an in-process server, as tests/test_cli.py does.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trio

from runtime.cli import main
from runtime.cli_output import MIN_COLUMN, table
from runtime.cli_parser import Parser, subcommands
from runtime.cli_verbs import build_parser
from tests.api.harness import IO_TIMEOUT, running_api

REPO = Path(__file__).resolve().parents[1]
VERBS = sorted(
    "serve config create show describe drop start stop restart getstatus gettopo validate import export query"
    " replay completion help version".split()
)
VERBS_IN_ORDER = list(subcommands(build_parser()))  # as `oort --help` lists them
WITH_MEMORY = '() WITH (TYPE="memory", DATASOURCE="cli/help", FORMAT="JSON")'


def _oort(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8", **(env or {})},
        timeout=60,
    )


def _leaves(parser: Parser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    children = subcommands(parser)
    if not children:
        return [path]
    return [leaf for name, child in children.items() for leaf in _leaves(child, (*path, name))]


def _examples(help_text: str) -> str:
    assert "\nexamples:\n" in help_text, help_text
    return help_text.split("\nexamples:\n", 1)[1]


@pytest.mark.slow  # twenty processes; the in-process test below covers every verb in the quick loop
def test_every_verb_help_shows_its_usage_and_examples() -> None:
    assert sorted(subcommands(build_parser())) == VERBS  # a new verb gets its help checked here too
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(VERBS, pool.map(lambda verb: _oort(verb, "--help"), VERBS), strict=True))
    for verb, result in results.items():
        assert (result.returncode, result.stderr) == (0, ""), (verb, result.stderr)
        assert result.stdout.startswith(f"usage: oort {verb}"), result.stdout
        assert f"oort {verb}" in _examples(result.stdout), result.stdout

    root = _oort("--help")
    assert root.returncode == 0 and root.stdout.startswith("usage: oort")
    assert 'eval "$(oort completion bash)"' in root.stdout  # how to turn completion on
    assert "oort drop stream NAME [-force]" in root.stdout  # every form, in full


def test_every_command_help_shows_its_usage_and_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    leaves = _leaves(build_parser())
    assert ("drop", "confkey") in leaves and ("show", "confkeys") in leaves and ("query",) in leaves
    for leaf in [*leaves, *((verb,) for verb in VERBS)]:
        assert main([*leaf, "--help"]) == 0
        out = capsys.readouterr().out
        words = " ".join(leaf)
        assert out.startswith(f"usage: oort {words}"), out
        assert f"oort {words}" in _examples(out), out


def test_usage_errors_name_the_verb_and_show_its_usage() -> None:
    result = _oort("drop", "stream")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("oort drop stream: the following arguments are required: NAME")
    assert "usage: oort drop stream NAME [-force]" in result.stderr
    result = _oort("shwo", "rules")
    assert result.returncode == 2 and "unknown command 'shwo' (did you mean 'show'?)" in result.stderr
    result = _oort()  # no command: the whole help, on stderr, and a failure for the script that forgot it
    assert result.returncode == 2 and result.stderr.startswith("usage: oort") and result.stdout == ""


def test_help_into_a_closed_pipe_ends_quietly() -> None:
    script = (
        "import os, sys\n"
        "r, w = os.pipe()\n"
        "os.close(r)\n"
        "os.dup2(w, 1)\n"
        "from runtime.cli import main\n"
        "sys.exit(main(['create', '--help']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=False, cwd=REPO, timeout=60
    )
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr, result.stderr


def _bash_complete(script: Path, *words: str) -> list[str]:
    """What bash proposes for the last of ``words`` (the line typed so far, split as bash splits it)."""
    program = (
        f"source {script}\n"
        'COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()\n'
        "_oort\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "-c", program, "bash", *words], capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed here")
def test_bash_completion_is_valid_bash_and_completes_verbs_words_and_options(tmp_path: Path) -> None:
    result = _oort("completion", "bash")
    assert result.returncode == 0, result.stderr
    script = tmp_path / "oort.bash"
    script.write_text(result.stdout)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    # The sub-commands of the empty path (the verbs) are the first arm of __oort_subcommands.
    verbs_arm = next(line for line in result.stdout.splitlines() if line.strip().startswith('"") echo'))
    assert verbs_arm.split('"')[3].split() == VERBS_IN_ORDER
    assert sorted(VERBS_IN_ORDER) == VERBS

    assert _bash_complete(script, "oort", "") == VERBS_IN_ORDER
    assert _bash_complete(script, "oort", "ge") == ["getstatus", "gettopo"]
    assert _bash_complete(script, "oort", "create", "") == ["stream", "table", "rule", "confkey"]
    assert _bash_complete(script, "oort", "--host", "http://h", "drop", "stream", "x", "-f") == ["-force"]
    assert _bash_complete(script, "oort", "show", "confkeys", "") == ["sources", "sinks"]
    assert _bash_complete(script, "oort", "completion", "") == ["bash", "zsh"]
    assert "--rest-port" in _bash_complete(script, "oort", "serve", "--")
    assert _bash_complete(script, "oort", "serve", "--rest-port", "") == []  # a number: nothing to propose
    (tmp_path / "rule.json").write_text("{}")
    assert _bash_complete(script, "oort", "create", "rule", "r1", "-f", str(tmp_path / "ru")) == [
        str(tmp_path / "rule.json")
    ]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed here")
def test_zsh_completion_is_valid_zsh_and_completes_the_same() -> None:
    result = _oort("completion", "zsh")
    assert result.returncode == 0, result.stderr
    check = subprocess.run(["zsh", "-n"], input=result.stdout, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    # _oort as zsh's completion system would call it, with compadd (a builtin of completion widgets only)
    # replaced by a function that prints what it was given.
    program = (
        f"{result.stdout}\n"
        'compadd() { print -r -- "${@:2}"; }\n'
        "words=(oort create ''); CURRENT=3; _oort\n"
        "words=(oort drop stream x -f); CURRENT=5; _oort\n"
    )
    run = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, check=True, timeout=30)
    assert run.stdout.splitlines() == [
        "stream table rule confkey",
        "-h --help --host --data --json -force --force",
    ]
    assert "load zsh's completion system first" in run.stderr  # compinit was not loaded in this shell


def test_table_fits_the_width_by_cutting_the_widest_column() -> None:
    rows = [("r1", "running", "alpha,beta"), ("r2", "stopped: canceled manually by the operator", "")]
    whole = table(("ID", "STATUS", "TAGS"), rows)
    assert whole.splitlines() == [
        "ID  STATUS                                      TAGS",
        "r1  running                                     alpha,beta",
        "r2  stopped: canceled manually by the operator",
    ]
    assert table(("ID", "STATUS", "TAGS"), rows, 200) == whole  # fits: unchanged
    cut = table(("ID", "STATUS", "TAGS"), rows, 30).splitlines()
    assert max(map(len, cut)) <= 30
    assert cut == ["ID  STATUS          TAGS", "r1  running         alpha,beta", "r2  stopped: canc…"]
    # Two wide columns share the cut; none goes below MIN_COLUMN, even when the table cannot fit.
    shared = table(("A", "B"), [("x" * 40, "y" * 40)], 42).splitlines()
    assert shared[1] == "x" * 19 + "…  " + "y" * 19 + "…"
    narrow = table(("A", "B", "C"), [("x" * 40, "y" * 40, "z" * 40)], 5).splitlines()
    assert narrow[1] == "  ".join([c * (MIN_COLUMN - 1) + "…" for c in "xyz"])


def test_kuiper_forms_parse_with_options_anywhere() -> None:
    parser = build_parser()

    def parse(*argv: str) -> dict[str, object]:
        args, extras = parser.parse_known_args(list(argv))
        assert extras == []
        return {k: v for k, v in vars(args).items() if k != "parser"}

    ddl = '(a BIGINT) WITH (TYPE="memory")'
    assert parse("create", "stream", "demo", ddl) == {
        "command": "create stream",
        "name": "demo",
        "words": [ddl],
        "file": None,
    }
    # The glued form  create stream demo'(...)'  is one word; a global option may come between the words.
    assert parse("create", "stream", "demo" + ddl)["name"] == "demo" + ddl
    assert parse("create", "stream", "demo", "--host", "h:1", ddl)["words"] == [ddl]
    assert parse("create", "rule", "--json", "r1", "{}", "--data", "d")["words"] == ["{}"]
    assert parse("drop", "stream", "demo", "-force")["force"] is True
    assert parse("drop", "stream", "-force", "demo")["name"] == "demo"
    assert parse("create", "table", "-f", "t.sql")["file"] == Path("t.sql")
    assert parse("--host", "a", "show", "rules", "--host=b")["host"] == "b"  # after the command wins
    assert parse("--json", "show", "rules")["json"] is True
    assert parse("--data", "/srv/oort", "serve")["data"] == Path("/srv/oort")


def test_every_serve_flag_of_the_configuration_is_an_option_of_serve_and_config_show() -> None:
    from runtime.config.overrides import SERVE_FLAGS

    verbs = subcommands(build_parser())
    for parser in (verbs["serve"], subcommands(verbs["config"])["show"]):
        declared = {flag for action in parser._actions for flag in action.option_strings}
        assert set(SERVE_FLAGS) <= declared, parser.prog


def test_cli_modules_import_no_engine_at_module_level() -> None:
    """Only the standard library, the other cli modules and runtime.errors at import time: ``oort --help``
    and the client verbs must not load the engine (serve, config show and replay import it when they run)."""
    allowed = {"runtime.errors", "runtime.cli_output", "runtime.cli_parser", "runtime.cli_verbs"}
    for path in sorted((REPO / "runtime").glob("cli*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: imports inside functions are the lazy ones
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runtime"):
                assert node.module in allowed, f"{path.name} imports {node.module} at module level"
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("runtime") for alias in node.names), path.name


@pytest.mark.slow
async def test_show_rules_is_cut_to_columns_and_json_never_is(tmp_path: Path) -> None:
    tags = [f"tag-number-{i}" for i in range(12)]
    rule = {"sql": "SELECT * FROM demo", "actions": [{"nop": {}}], "tags": tags}

    async def oort(*args: str, columns: str | None = None) -> str:
        env = {"COLUMNS": columns} if columns else {}
        result = await trio.to_thread.run_sync(lambda: _oort(*args, env=env))
        assert (result.returncode, result.stderr) == (0, ""), (args, result.stderr)
        return result.stdout

    async with running_api(tmp_path) as api:
        with trio.fail_after(IO_TIMEOUT * 2):
            # --host between the verb's words: each leaf parses its options and words intermixed.
            await oort("create", "stream", "demo", "--host", api.url, WITH_MEMORY)
            await oort("create", "rule", "--host", api.url, "r1", json.dumps(rule))
            cut = (await oort("show", "rules", "--host", api.url, columns="40")).splitlines()
            assert cut[0] == "ID  STATUS   TAGS"
            assert cut[1].startswith("r1  running  tag-number-0,tag-number-1,") and cut[1].endswith("…")
            assert len(cut[1]) == 40
            env_columns = os.environ.get("COLUMNS")
            if env_columns is None:  # a pipe, no COLUMNS: whole lines, for grep and friends
                whole = await oort("show", "rules", "--host", api.url)
                assert whole.splitlines()[1] == f"r1  running  {','.join(tags)}"
            shown = json.loads(await oort("--json", "show", "rules", "--host", api.url, columns="40"))
            assert shown[0]["tags"] == tags
