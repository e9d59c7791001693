"""The shape of ``runtime/``: no import cycles, modules of a readable size, no untyped engine services.

The layer order itself is pyproject's ``[tool.importlinter]`` contract, run by CI as ``lint-imports``; this
file checks what that contract cannot say.
"""

from __future__ import annotations

import re
from pathlib import Path

import grimp

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"
MAX_LINES = 500


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles_among_runtime_modules() -> None:
    # Imports inside functions and under TYPE_CHECKING count too: a cycle hidden that way is still a cycle.
    graph = grimp.build_graph("runtime", exclude_type_checking_imports=False)
    assert len(graph.modules) > 50
    assert _cycles(graph) == []


def test_cycle_finder_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.c", imported="a.d")
    assert _cycles(graph) == [["a.b", "a.c"]]


def test_no_module_over_500_lines() -> None:
    sizes = {str(p.relative_to(RUNTIME)): len(p.read_text().splitlines()) for p in RUNTIME.rglob("*.py")}
    assert len(sizes) > 50
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_engine_services_typed_any() -> None:
    untyped = [
        f"{p.relative_to(RUNTIME)}:{n}"
        for p in RUNTIME.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\bservices\s*:\s*Any\b", line)
    ]
    assert untyped == []


def test_the_package_loads_its_public_names_on_first_use() -> None:
    """``import runtime`` (every oort command's first step) must not load the engine: client verbs would pay
    ~300 ms for it. The names still resolve."""
    import subprocess
    import sys

    probe = (
        "import sys, runtime\n"
        "assert 'runtime.engine' not in sys.modules, 'engine loaded by import runtime'\n"
        "assert runtime.Engine.__name__ == 'Engine' and runtime.__version__\n"
        "assert 'runtime.engine' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
