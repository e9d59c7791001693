"""Shared fixtures and helpers: an in-process engine on a temporary etc/ and data directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from runtime.config import load_config
from runtime.engine import Engine
from runtime.io.registry import Registry, builtin_registry
from tests.tls_certs import Certs, make_certs


def all_task_names() -> list[str]:
    """Every task alive in this trio run (walked from the root task), to prove that stop releases tasks."""
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        names.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return sorted(names)


@pytest.fixture
def registry() -> Registry:
    return builtin_registry()


@pytest.fixture
async def engine(tmp_path: Path, registry: Registry) -> AsyncIterator[Engine]:
    etc = tmp_path / "etc"
    etc.mkdir()
    eng = Engine(load_config(etc), etc_dir=etc, data_dir=tmp_path / "data", registry=registry, seed=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(eng.run)
        yield eng
        nursery.cancel_scope.cancel()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """CA, server (127.0.0.1/localhost) and client certificates, generated once per test session."""
    return make_certs(tmp_path_factory.mktemp("certs"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line with eKuiper conformance per group (parser, function-call, projection, rule), when they ran."""
    from tests.conformance._harness import SCORES

    if SCORES:
        parts = [f"{group} {passed}/{total}" for group, (passed, total) in sorted(SCORES.items())]
        terminalreporter.write_line("eKuiper conformance: " + ", ".join(parts))
