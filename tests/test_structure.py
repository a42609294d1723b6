"""The package's shape: no import circle between its modules (function-level imports included), every module
says its one job in the first line of its docstring, and the package's module index lists every module."""
import ast
from pathlib import Path

import pytest

import predistort

PACKAGE = Path(predistort.__file__).resolve().parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def imports_of(path, modules=MODULES):
    """The package modules that the file at `path` imports anywhere (module level or inside functions).

    ``from . import a, b`` and ``from predistort import a`` count as imports of the modules a and b (and of
    the package itself for names that are not modules); ``from .a import x``, ``from predistort.a import x``
    and ``import predistort.a`` as imports of a.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.level == 0 and (node.module or "").split(".")[0] == "predistort"):
                parts = (node.module or "").split(".")
                parts = parts[1:] if node.level == 0 else parts
                parts = [p for p in parts if p]
                if parts:
                    found.add(parts[0])
                else:
                    found |= {a.name if a.name in modules else "__init__" for a in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "predistort":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def graph(files):
    return {name: imports_of(path) - {name} for name, path in files.items()}


def cycles(edges):
    """Every import circle of the graph, as a list of module names (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def package_files():
    return {p.stem: p for p in PACKAGE.glob("*.py")}


def test_no_import_circle_between_package_modules():
    found = cycles(graph(package_files()))
    assert not found, "import circles (function-level imports count too): " + "; ".join(" ↔ ".join(c) for c in found)


def test_the_circle_check_finds_a_circle_hidden_in_a_function(tmp_path):
    """The checker itself: a function-level import that closes a circle is found, a one-way import is not."""
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import x\n    return x\n")
    (tmp_path / "c.py").write_text("from predistort.a import y\n")
    files = {p.stem: p for p in tmp_path.glob("*.py")}
    edges = {name: imports_of(path, modules=["a", "b", "c"]) - {name} for name, path in files.items()}
    assert edges == {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(edges) == [["a", "b"]]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_states_its_job_in_one_line(name):
    doc = ast.get_docstring(ast.parse((PACKAGE / f"{name}.py").read_text()))
    assert doc, f"predistort/{name}.py has no docstring"
    first = doc.splitlines()[0].strip()
    assert 20 <= len(first) <= 120 and first.endswith((".", ":")), f"{name}: {first!r}"


def test_the_package_index_lists_every_module():
    index = predistort.__doc__
    listed = {line.split()[0] for line in index.splitlines() if line.startswith("    ") and line.split()}
    assert listed == set(MODULES), f"missing: {set(MODULES) - listed}; not modules: {listed - set(MODULES)}"


def test_the_index_is_in_import_order():
    """Each module imports only modules listed above it in the package index: a newcomer reads them in order."""
    order = [line.split()[0] for line in predistort.__doc__.splitlines() if line.startswith("    ") and line.split()]
    edges = graph(package_files())
    late = [f"{name} imports {dep}" for name in order for dep in edges[name]
            if dep in order and order.index(dep) > order.index(name)]
    assert not late, "; ".join(late)
