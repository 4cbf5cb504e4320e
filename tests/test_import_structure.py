"""rlplug's modules import each other in one direction only (the module-level import graph has no
cycle, ``if TYPE_CHECKING:`` imports included), and no function imports an rlplug module to dodge
a cycle. A function-local import is kept only for an optional or heavy dependency (wandb,
matplotlib, imageio, ...) and says why in a comment on its line or the line above.

``rlplug/__main__.py`` is the one exception to the second rule: the entry point imports the CLI
inside ``main`` so that Ctrl-C and errors raised while importing reach its one-line handlers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rlplug"
ENTRY_POINT = "rlplug.__main__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@dataclass
class Import:
    module: str  # the importing module
    line: int
    targets: set[str]  # rlplug modules it imports
    local: bool  # inside a function
    commented: bool  # a comment on its line or the line above


def _imports(module: str, path: Path) -> list[Import]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found: list[Import] = []

    def targets(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                package = module.split(".")[:-node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join([*package, base] if base else package)
            # `from rlplug import messages` imports the module rlplug.messages
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        return {n for n in names if n in MODULES and n != module}

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                near = lines[child.lineno - 1] + (lines[child.lineno - 2] if child.lineno > 1 else "")
                found.append(Import(module, child.lineno, targets(child), in_function, "#" in near))
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(source), False)
    return found


ALL_IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def test_the_module_level_import_graph_has_no_cycle() -> None:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in ALL_IMPORTS:
        if not imp.local:
            edges[imp.module] |= imp.targets
    assert "rlplug.cli" in edges and "rlplug.contracts" in edges["rlplug.run"] | {
        t for m in edges["rlplug.run"] for t in edges[m]}  # the graph is really read
    cycles = _cycles(edges)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_no_function_imports_an_rlplug_module() -> None:
    offenders = [f"{i.module}:{i.line}" for i in ALL_IMPORTS
                 if i.local and i.targets and i.module != ENTRY_POINT]
    assert not offenders, f"function-local imports of rlplug modules (move them to the top): {offenders}"


def test_every_function_local_import_says_why() -> None:
    unexplained = [f"{i.module}:{i.line}" for i in ALL_IMPORTS
                   if i.local and not i.commented and i.module != ENTRY_POINT]
    assert not unexplained, (f"function-local imports without a comment saying why (only optional "
                             f"or heavy dependencies may be imported late): {unexplained}")


def test_every_module_imports_in_a_fresh_interpreter_in_either_order() -> None:
    names = sorted(m for m in MODULES if m != ENTRY_POINT)
    for order in (names, names[::-1]):
        code = f"import importlib\nfor name in {order!r}:\n    importlib.import_module(name)\n"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"importing in the order {order[:3]}...: {proc.stderr[-2000:]}"
