"""The import contract: which package may import which, read from the sources' own import
statements (every one, function-local ones included), not from what a test run happened to load.

- `core` is the bottom: the standard library and PyYAML only (the stack files are YAML); no pulumi,
  no boto3, nothing of ours but core;
- nothing in `steps` reaches `components` (the resource model), directly or through another module;
- nothing in `steps` or `workflow` reaches pulumi: the deploy steps and the workflows' helpers start
  without loading the SDK. Two named exceptions: `workflow.verify_state` evaluates this checkout's
  program under mocks (`tools.offline`) to compare a state with it, and `workflow.teardown_preview`
  derives from that evaluation what a closed PR's preview has; that is their job;
- no cycle between modules of ours.

A package's `__init__` runs before any of its modules, so a module also reaches what its packages'
`__init__` files import (for the reach rules, not for cycles).
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "components", "steps", "workflow", "tools", "policy", "sandbox", "bench", "tests")
# (importer, imported): the one edge the "no pulumi in workflow" rule does not follow, and why.
ALLOWED_EDGES = {
    ("workflow.verify_state", "tools.offline"): "compares a state with the program it evaluates under mocks",
    ("workflow.teardown_preview", "workflow.verify_state"): "derives what to remove from the program evaluated under mocks",
}
# What core may import besides the standard library: the stack files are YAML.
CORE_THIRD_PARTY = {"yaml"}
PULUMI = ("pulumi", "pulumi_aws", "pulumi_cloudflare", "pulumi_command", "pulumi_policy")


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    """A module of ours (`steps.runtime`) or a top-level external name (`pulumi`)."""
    line: int


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules_of(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if any(part in {"venv", ".venv", "node_modules", "fixtures"} or part.startswith(".") for part in path.relative_to(root).parts):
                continue
            found[module_name(root, path)] = path
    return found


def _resolve(name: str, ours: Mapping[str, Path], tops: set[str]) -> str | None:
    """The most specific module of ours that `name` names, the top-level external name, or None
    for a name of ours that names no module (an attribute: `from core import names` gives core.names)."""
    if name.split(".")[0] not in tops:
        return name.split(".")[0]
    parts = name.split(".")
    while parts:
        if ".".join(parts) in ours:
            return ".".join(parts)
        parts.pop()
    return None


@functools.lru_cache(maxsize=8)
def import_edges(root: Path, packages: tuple[str, ...]) -> tuple[dict[str, Path], list[Edge]]:
    ours = modules_of(root, packages)
    tops = {name.split(".")[0] for name in ours}
    edges = []
    for module, path in ours.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for name in names:
                target = _resolve(name, ours, tops)
                if target and target != module:
                    edges.append(Edge(module, target, node.lineno))
    return ours, edges


def _graph(edges: Iterable[Edge], skip: Mapping[tuple[str, str], str] = {}) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if (edge.importer, edge.imported) not in skip:
            graph.setdefault(edge.importer, set()).add(edge.imported)
    return graph


def _with_packages(graph: dict[str, set[str]], ours: Iterable[str]) -> dict[str, set[str]]:
    """Each module also runs its packages' __init__ files."""
    ours = set(ours)
    full = {module: set(targets) for module, targets in graph.items()}
    for module in ours:
        parts = module.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent in ours:
                full.setdefault(module, set()).add(parent)
    return full


def path_to(graph: Mapping[str, set[str]], start: str, wanted) -> list[str] | None:
    """The shortest import chain from `start` to a module for which `wanted` holds, or None."""
    seen = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop(0)
        for target in sorted(graph.get(current, ())):
            if target in seen:
                continue
            seen[target] = [*seen[current], target]
            if wanted(target):
                return seen[target]
            queue.append(target)
    return None


def cycles(graph: Mapping[str, set[str]], ours: set[str]) -> list[list[str]]:
    """Strongly connected groups of our modules that import each other (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in ours:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(ours):
        if node not in index:
            visit(node)
    return found


def violations(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    ours, edges = import_edges(root, packages)
    problems = []
    stdlib = set(sys.stdlib_module_names)
    for edge in edges:
        if edge.importer.split(".")[0] != "core":
            continue
        top = edge.imported.split(".")[0]
        if top != "core" and (top in {name.split(".")[0] for name in ours} or top not in stdlib | CORE_THIRD_PARTY):
            problems.append(f"{edge.importer} (line {edge.line}) imports {edge.imported}: core imports the standard library and PyYAML only")

    graph = _with_packages(_graph(edges), ours)
    relaxed = _with_packages(_graph(edges, ALLOWED_EDGES), ours)
    for module in sorted(ours):
        top = module.split(".")[0]
        if top == "steps":
            chain = path_to(graph, module, lambda m: m.split(".")[0] == "components")
            if chain:
                problems.append(f"{module} reaches components: {' -> '.join(chain)}")
        if top in ("steps", "workflow"):
            chain = path_to(relaxed, module, lambda m: m.split(".")[0] in PULUMI)
            if chain:
                problems.append(f"{module} reaches pulumi: {' -> '.join(chain)}")
    for group in cycles(_graph(edges), set(ours)):
        problems.append(f"import cycle: {', '.join(group)}")
    return problems


def test_the_repository_keeps_the_import_contract():
    assert violations(ROOT) == []


def test_the_contract_sees_the_imports_it_is_about():
    # The reader finds the edges the rules are about, function-local ones included.
    _, edges = import_edges(ROOT, PACKAGES)
    found = {(e.importer, e.imported) for e in edges}
    assert ("components.settings", "core.names") in found
    assert ("steps.build_lambda", "steps.install") in found  # a function-local import
    assert ("workflow.verify_state", "tools.offline") in found
    assert ("components.pipeline", "pulumi") in found


def _tree(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in {Path(name).parts[0] for name in files}:
        (root / package / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({"core/facts.py": "import boto3\n"}, "core.facts (line 1) imports boto3", id="core-third-party"),
        pytest.param({"core/facts.py": "from steps import x\n", "steps/x.py": ""}, "core.facts (line 1) imports steps.x", id="core-ours"),
        pytest.param(
            {"steps/a.py": "def f():\n    from steps import b\n", "steps/b.py": "from components.c import C\n", "components/c.py": ""},
            "steps.a reaches components: steps.a -> steps.b -> components.c",
            id="steps-components-through-another",
        ),
        pytest.param(
            {"workflow/a.py": "from core import names\n", "core/names.py": "", "core/__init__.py": "", "workflow/__init__.py": "import pulumi_aws\n"},
            "workflow.a reaches pulumi: workflow.a -> workflow -> pulumi_aws",
            id="workflow-pulumi-through-package-init",
        ),
        pytest.param(
            {"steps/pages.py": "from steps.package_manager import npm_tool\n", "steps/package_manager.py": "def main():\n    from steps.pages import X\n"},
            "import cycle: steps.package_manager, steps.pages",
            id="function-local-cycle",
        ),
        pytest.param(
            {"workflow/sweep.py": "from tools.offline import run\n", "tools/offline.py": "import pulumi\n"},
            "workflow.sweep reaches pulumi: workflow.sweep -> tools.offline -> pulumi",
            id="exception-is-one-edge-only",
        ),
    ],
)
def test_each_rule_fails_when_it_is_broken(tmp_path, files, expected):
    root = _tree(tmp_path, files)
    found = violations(root, ("core", "components", "steps", "workflow", "tools"))
    assert any(problem.startswith(expected) for problem in found), found
