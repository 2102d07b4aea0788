"""The import structure: no circles between modules, and packages that import only downward.

Read with `ast` from the source, so every import counts: top-level, inside a function, and under
`if TYPE_CHECKING:` (a circle of type-only imports is still a circle for a reader and for a refactoring).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = (
    "mlperf_llm_sut.common",
    "mlperf_llm_sut.telemetry",
    "mlperf_llm_sut.benchmarks",
    "accuracy",
    "scenarios",
    "sut",
    "harness",
)
"""The project's packages from the ground up: each may import itself and those before it, never one after."""
ROOMS = ("harness.single", "harness.research", "harness.submission")
"""harness/'s rooms: the single run, and the two built on it, which never import each other; the command line
(`harness.cli`) stands over all three."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    """Every module of the layered packages, by dotted name."""
    return {
        _module_name(path): path
        for package in LAYERS
        for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    }


def _imported(module: str, path: Path) -> Iterator[str]:
    """The dotted names one module imports, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from package import submodule` imports the submodule; `from module import name`, the module.
            yield from (f"{source}.{alias.name}" for alias in node.names)


@cache
def _graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (names that are not modules resolve to their module).

    A package's `__init__` that Python runs on the way to one of its modules is not counted: the edge is the
    module named."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _layer(module: str) -> int:
    return next(index for index, package in enumerate(LAYERS) if _in(module, package))


def test_every_layered_package_is_read():
    modules = _modules()
    assert {package for package in LAYERS if any(_in(module, package) for module in modules)} == set(LAYERS)
    assert "mlperf_llm_sut.common.dataset" in modules and "sut.apis" in modules


def test_no_module_imports_itself_back_through_a_circle():
    cycles = _cycles(_graph())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(cycle) for cycle in cycles)


def test_packages_import_only_themselves_and_the_packages_below():
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert not upward, f"imports against the order {' < '.join(LAYERS)}:\n" + "\n".join(upward)


def test_imports_in_functions_under_type_checking_and_relative_ones_all_count(tmp_path):
    path = tmp_path / "module.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "import mlperf_llm_sut.common.errors\n"
        "from .. import plans\n"
        "from .sibling import name\n"
        "if TYPE_CHECKING:\n"
        "    from sut.replica import Replica\n"
        "def later():\n"
        "    from harness import runner\n"
    )
    imported = set(_imported("harness.sub.module", path))
    assert {
        "mlperf_llm_sut.common.errors",
        "harness.plans",
        "harness.sub.sibling.name",
        "sut.replica.Replica",
    } <= imported
    assert "harness.runner" in imported and "harness" not in imported  # the submodule, not its package


def test_a_name_resolves_to_the_module_that_defines_it_and_a_submodule_to_itself():
    graph = _graph()
    assert (
        "mlperf_llm_sut.common.errors" in graph["mlperf_llm_sut.common.dataset"]
    )  # from mlperf_llm_sut.common.errors import HarnessError
    assert "sut.apis.openai" not in graph["sut.apis"]  # named in a string only, imported by importlib


def test_a_planted_circle_is_found_and_the_order_runs_from_common_up():
    """The checks themselves: a planted circle is found, and the layer order is what the tests apply."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert (
        _layer("mlperf_llm_sut.common.dataset") < _layer("mlperf_llm_sut.benchmarks") < _layer("harness.single.runner")
    )


def test_the_rooms_of_harness_import_the_single_run_and_never_each_other_or_the_command_line():
    graph = _graph()
    crossing = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        for room in ROOMS
        if _in(module, room)
        and _in(target, "harness")
        and not _in(target, room)
        # the single run is the ground of the other rooms
        and not (room != "harness.single" and _in(target, "harness.single"))
    )
    assert not crossing, "imports between harness's rooms, or from a room up to the command line:\n" + "\n".join(
        crossing
    )
    assert any(_in(target, "harness.single") for target in graph["harness.research.sweep"])


def test_the_project_installs_no_top_level_package_but_the_cards_and_its_own_name():
    """`common` or `benchmarks` at the top of site-packages would clash with any distribution that ships one."""
    installed = metadata.distribution("mlperf-llm-sut").read_text("top_level.txt") or ""
    assert set(installed.split()) == {"sut", "scenarios", "accuracy", "harness", "mlperf_llm_sut"}, installed
