"""The package's structure: no import cycles, and the training package used only by itself and the command line.

Imports are read from the source (those inside functions too), so a cycle dodged by a local import counts.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("layered_gan", "cuda_ops")


def modules():
    """{module name: file path} for every module of the packages."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].replace(os.sep, ".")
                    found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(folder, name)
    return found


def imports(name, path, known):
    """The package modules that module `name` imports, anywhere in its source."""
    is_package = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def graph():
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def find_cycle(edges):
    """One import cycle as a list of module names, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_through_a_local_import(tmp_path):
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text("from .y import f\n")
    (pkg / "y.py").write_text("def f():\n    from . import x\n")
    known = {"pkg": str(pkg / "__init__.py"), "pkg.x": str(pkg / "x.py"), "pkg.y": str(pkg / "y.py")}
    edges = {name: imports(name, path, known) for name, path in known.items()}
    assert find_cycle(edges) == ["pkg.x", "pkg.y", "pkg.x"]


def test_only_the_command_line_imports_the_training_package():
    outside = {name: deps for name, deps in graph().items()
               if not name.startswith("layered_gan.training") and name != "layered_gan.cli"}
    users = sorted(name for name, deps in outside.items() if any(d.startswith("layered_gan.training") for d in deps))
    assert users == []
