"""``oort serve``: load ``etc/`` (config, stream DDL files, rule files), run the engine and the REST API.

Shutdown ladder: SIGINT/SIGTERM cancels the root nursery; the engine stops every rule (sinks flushed and
closed within bounded time) and the REST server is cancelled; ``main`` then returns 0.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import tempfile
import tomllib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import trio

from runtime import logsetup
from runtime.api.server import serve_api
from runtime.config import CONFIG_FILE, Config
from runtime.config.overrides import load_layered
from runtime.engine import Engine
from runtime.errors import ConfigError, EngineError, leaves
from runtime.sql.ast import StreamDef
from runtime.sql.parser import parse_statements

LOGGER = logging.getLogger("oort.daemon")

# The cyclic garbage collector's youngest-generation threshold (CPython's default: 700). Every rule keeps
# hundreds of live container objects (tasks, channels, cancel scopes, plan nodes), so with the default each rule
# creation triggers a young collection, every tenth of those an older one, and whenever the heap has grown by a
# quarter a full collection that walks every object of every rule: 23 % of the daemon's CPU while creating 6,000
# rules over REST (benchmark P3), growing with the rule count. 50,000 makes every generation run about 70 times
# less often; the cost is at most that many unreachable cyclic objects (a few MB) lingering a little longer.
# Objects freed by reference counting (nearly all per-event garbage) are unaffected.
GC_THRESHOLD0 = 50_000


def main(
    etc_dir: Path | None,
    data_dir: Path,
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the daemon until SIGINT/SIGTERM. Returns the process exit code (2 for a bad configuration).

    ``etc_dir`` None (``oort serve --no-etc``) runs on the defaults (reading ``data_dir/etc``, usually absent);
    ``flags`` are ``oort serve``'s settings (dotted keys) over ``OORT__...`` variables over ``oort.toml``.
    """
    if etc_dir is not None and not (etc_dir / CONFIG_FILE).is_file():
        print(
            f"oort: no {CONFIG_FILE} in {etc_dir}: give the configuration folder with --etc DIR "
            "(or --no-etc to run on the defaults)",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_layered(etc_dir, os.environ if environ is None else environ, flags).config
    except ConfigError as exc:
        print(f"oort: {exc.message}", file=sys.stderr)
        return 2
    problem = _data_dir_problem(data_dir)
    if problem is not None:
        print(f"oort: {problem}", file=sys.stderr)
        return 2
    try:
        logsetup.configure(config, data_dir)
    except OSError as exc:
        print(f"oort: cannot open the log file: {exc.strerror or exc} ({exc.filename})", file=sys.stderr)
        return 2
    LOGGER.info("configuration from %s, data in %s", etc_dir if etc_dir is not None else "defaults", data_dir)
    _, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, threshold1, threshold2)
    failures: list[BaseException] = []
    try:
        trio.run(serve, config, etc_dir if etc_dir is not None else data_dir / "etc", data_dir)
    except* EngineError as group:  # e.g. the REST port is taken: one clear line, no traceback
        failures.extend(leaves(group))
    except* OSError as group:  # a file the daemon needs cannot be read or written: one line each too
        failures.extend(leaves(group))
    for failure in failures:
        LOGGER.error("%s", failure)
    return 1 if failures else 0


def _data_dir_problem(data_dir: Path) -> str | None:
    """Why the data dir cannot hold the daemon's state (it is made when missing), or None."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        return f"data dir {data_dir} is not usable: {exc.strerror or exc}"
    return None


async def serve(
    config: Config,
    etc_dir: Path,
    data_dir: Path,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the engine and the REST API until a termination signal arrives.

    Calls ``task_status.started(rest_port)`` once the REST API is listening (port 0 in the config picks a
    free port; the bound one is logged as ``REST API listening on http://HOST:PORT``).
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            engine = Engine(config, etc_dir=etc_dir, data_dir=data_dir)
            await nursery.start(engine.run)
            nursery.start_soon(engine.loop_lag.run)
            await provision(engine, etc_dir)
            host = config.basic.rest_ip
            port = await nursery.start(serve_api, engine, host, config.basic.rest_port)
            task_status.started(port)
            await _wait_for_stop(signals, engine)
            nursery.cancel_scope.cancel()
    LOGGER.info("stopped")


async def _wait_for_stop(signals: AsyncIterator[int], engine: Engine) -> None:
    """Return on SIGINT/SIGTERM or when REST ``/stop`` asked the engine to shut down."""
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            async for signum in signals:
                LOGGER.info("received %s, stopping", signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel()

        async def on_request() -> None:
            await engine.shutdown_requested.wait()
            LOGGER.info("stop requested over REST, stopping")
            nursery.cancel_scope.cancel()

        nursery.start_soon(on_signal)
        nursery.start_soon(on_request)


async def provision(engine: Engine, etc_dir: Path) -> list[str]:
    """Create the streams of ``etc/streams/*.sql`` then the rules of ``etc/rules/*.json|toml``.

    A definition already in the catalog with the same text is left alone (its rule keeps its started/stopped
    state); a changed one replaces the stored one. A bad file or statement is reported and skipped; the rest
    still loads. Returns the problems found, one line each.
    """
    problems: list[str] = []
    for path in sorted((etc_dir / "streams").glob("*.sql")):
        try:
            statements = parse_statements(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, EngineError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        for stmt in statements:
            if not isinstance(stmt, StreamDef):
                problems.append(f"{path}: only CREATE STREAM/TABLE statements belong here")
                continue
            try:
                engine.provision_stream(stmt)
            except EngineError as exc:
                problems.append(f"{path}: {stmt.name}: {exc.message}")
    rule_files = sorted([*(etc_dir / "rules").glob("*.json"), *(etc_dir / "rules").glob("*.toml")])
    for path in rule_files:
        try:
            docs = _read_rules(path)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        for doc in docs:
            try:
                await engine.provision_rule(doc)
            except EngineError as exc:
                problems.append(f"{path}: {doc.get('id', '?')}: {exc.message}")
    for problem in problems:
        LOGGER.error("etc: %s", problem)
    return problems


def _read_rules(path: Path) -> list[dict[str, Any]]:
    """A rule file holds one rule object or a list of them (JSON), or one rule (TOML)."""
    data = path.read_bytes()
    doc: Any = tomllib.loads(data.decode("utf-8")) if path.suffix == ".toml" else orjson.loads(data)
    docs = doc if isinstance(doc, list) else [doc]
    if not all(isinstance(d, dict) for d in docs):
        raise ValueError("a rule file holds a rule object or a list of rule objects")
    return docs
