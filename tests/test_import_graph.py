"""The import graph of ``netgpt`` has no cycle, counting every import: module level, inside functions, and under
``TYPE_CHECKING``. A function-local import that only hides a cycle from Python is still one here."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "netgpt"


def module_names(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package by dotted name; a package is named by its ``__init__``."""
    names = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``name`` (at ``path``) imports anywhere in its body. ``from a.b import c`` is an
    edge to ``a.b.c`` when that is a module, else to ``a.b`` (whose ``__init__`` defines ``c``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb from this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    return {m for m in found if m in modules and m != name}


def import_graph(src: Path = SRC) -> nx.DiGraph:
    modules = module_names(src)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in imported_modules(name, path, set(modules)))
    return graph


def test_the_graph_sees_function_local_and_relative_imports(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .leaf import VALUE\n")
    (package / "sub" / "leaf.py").write_text("def f():\n    from netgpt import top\n    return top\nVALUE = 1\n")
    (package / "top.py").write_text("from netgpt.sub import VALUE\n")
    graph = import_graph(tmp_path)
    assert set(graph.edges) == {("netgpt.sub", "netgpt.sub.leaf"), ("netgpt.sub.leaf", "netgpt.top"),
                                ("netgpt.top", "netgpt.sub")}
    assert len(list(nx.simple_cycles(graph))) == 1


def test_no_import_cycles():
    graph = import_graph()
    assert graph.number_of_nodes() > 50  # the walk found the package
    cycles = sorted(" → ".join([*cycle, cycle[0]]) for cycle in nx.simple_cycles(graph))
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(cycles)


def test_library_code_never_imports_the_cli():
    graph = import_graph()
    cli = {name for name in graph if name == "netgpt.cli" or name.startswith("netgpt.cli.")}
    importers = sorted(source for source, target in graph.edges if target in cli and source not in cli)
    assert not importers, f"modules that import the CLI: {importers}"
