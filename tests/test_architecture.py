"""The shape of the tree that the next capabilities build on (docs: ../shared/DESIGN.md, issue 25): no import
cycle anywhere in the package, a driver that reads top to bottom and names no executor."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "yoloattn"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports, at module level or inside a function
    (an import inside a function is still a dependency), except under ``if TYPE_CHECKING``. ``from . import
    x`` depends on the submodule x, not on the package's ``__init__``."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()

        class Visitor(ast.NodeVisitor):
            def visit_If(self, node):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    self.generic_visit(node)

            def visit_Import(self, node):
                deps.update(alias.name for alias in node.names)

            def visit_ImportFrom(self, node):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
                deps.update(submodules)
                if len(submodules) < len(node.names):
                    deps.add(target)

        Visitor().visit(ast.parse(path.read_text()))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    assert "yoloattn.compare.resolve" in graph["yoloattn.compare.runner"]  # it sees relative imports
    assert "yoloattn.compare.plan" in graph["yoloattn.compare.outputs"]


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []


def test_the_driver_is_short_and_names_no_executor():
    runner = (PACKAGE / "compare" / "runner.py").read_text()
    assert len(runner.splitlines()) <= 350
    imported = import_graph()["yoloattn.compare.runner"]
    assert not {m for m in imported if m.startswith("yoloattn.compare.executors.") and not m.endswith(".process")}
    code = ast.unparse(ast.parse(runner))  # without comments and docstrings' quoting
    assert "'ray'" not in code and "'local'" not in code and "ray_address" not in code


def test_every_builtin_module_takes_its_channels_alone():
    """The README's promise: a module takes and returns (B, C, H, W); ``Module(64)`` keeps the channels."""
    import torch

    from yoloattn.attention import ACmix, MLLABlock, MobileMQA, iRMB

    x = torch.randn(1, 64, 9, 11)
    for cls in (MobileMQA, ACmix, MLLABlock, iRMB):
        assert cls(64).eval()(x).shape == x.shape, cls.__name__
