"""The architecture, checked: the import-linter contracts of pyproject.toml, and no import cycle at all.

`make test` runs these tests: each contract (one test each, so a report names the broken one; `make lint`
runs them alone), and what the contracts do not say exactly: no cycle among dpo_exp's modules, counting
imports inside functions (grimp reads every import statement).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

from conftest import REPO

CONTRACTS = [c["id"] for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_contract_is_kept(contract):
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "pyproject.toml", "--contract", contract, "--no-cache"],
                            cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def import_cycles(package: str = "dpo_exp") -> list[list[str]]:
    """Every set of modules that import each other in a circle (strongly connected components of more
    than one module, or a module importing itself), directly or through others, deferred imports included."""
    import grimp

    graph = grimp.build_graph(package, cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # Tarjan; the graph has a few dozen modules, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges[v]:
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles_among_modules():
    cycles = import_cycles()
    assert not cycles, "modules that import each other in a circle (break each by moving what both need into " \
        "a module below them):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_deferred_import_cycle(tmp_path, monkeypatch):
    """Not vacuous: a circle closed by an import inside a function is found."""
    pkg = tmp_path / "circle_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circle_pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from circle_pkg import c\n")
    (pkg / "c.py").write_text("import circle_pkg.a\n")
    (pkg / "d.py").write_text("import circle_pkg.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("circle_pkg") == [["circle_pkg.a", "circle_pkg.b", "circle_pkg.c"]]
