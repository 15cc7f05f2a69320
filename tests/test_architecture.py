"""The package's shape, read from its source with `ast` (nothing is imported): modules talk
through public names, imports flow one way (no circle), no module outgrows one job, and no
comment cites a document outside the repository. docs/architecture.md describes these rules."""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "auxpretrain")
MAX_LINES = 500


def _modules():
    """module name -> path of every .py file of the package."""
    out = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


MODULES = _modules()


def _resolve(module, node):
    """Absolute module name of an ImportFrom node in `module` (relative imports included)."""
    if not node.level:
        return node.module
    package = module if MODULES[module].endswith("__init__.py") else module.rsplit(".", 1)[0]
    parts = package.split(".")
    base = ".".join(parts[:len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _imports(module):
    """(imported module, names taken from it, aliases bound to modules) of `module`, function
    bodies included."""
    tree = ast.parse(open(MODULES[module], encoding="utf-8").read())
    edges, names, aliases = set(), [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("auxpretrain"):
                    edges.add(a.name)
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            if not source or not source.startswith("auxpretrain"):
                continue
            for a in node.names:
                full = f"{source}.{a.name}"
                if full in MODULES:  # `from auxpretrain.data import tasks`: a module
                    edges.add(full)
                    aliases[a.asname or a.name] = full
                else:
                    edges.add(source)
                    names.append((source, a.name))
    return edges, names, aliases, tree


def test_no_module_imports_another_modules_private_names():
    bad = []
    for module in MODULES:
        edges, names, aliases, tree = _imports(module)
        bad += [f"{module}: from {source} import {name}" for source, name in names
                if name.startswith("_") and not name.startswith("__") and source != module]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__"):
                bad.append(f"{module}: {node.value.id}.{node.attr} ({aliases[node.value.id]})")
    assert not bad, "\n".join(bad)


def test_no_import_circle():
    graph = {m: {e for e in _imports(m)[0] if e in MODULES and e != m} for m in MODULES}
    circles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                circles.append(" -> ".join(path[path.index(n):] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(MODULES):
        if m not in state:
            visit(m, [m])
    assert not circles, "\n".join(circles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module):
    lines = sum(1 for _ in open(MODULES[module], encoding="utf-8"))
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines; split it by job"


def test_no_reference_to_documents_outside_the_repository():
    pattern = re.compile(r"seeds/0\d\d|\b(FINDINGS|STYLE|MISSION|DATA)\.md\b")
    roots = [PACKAGE] + [os.path.join(ROOT, d) for d in ("benchmarks", "examples", "docs", "corpora", "tests")]
    found = []
    for root in roots + [os.path.join(ROOT, "README.md")]:
        paths = [root] if os.path.isfile(root) else [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
        for path in paths:
            if path.endswith((".py", ".md", ".sh")) and os.path.abspath(path) != os.path.abspath(__file__):
                for i, line in enumerate(open(path, encoding="utf-8"), 1):
                    if pattern.search(line):
                        found.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_rules_catch_what_they_are_for(tmp_path, monkeypatch):
    """The checks above would fail on a private import and on a circle (they can fail)."""
    a = tmp_path / "a.py"
    a.write_text("from auxpretrain.b import _hidden\nimport auxpretrain.b as b\nx = b._other\n")
    b = tmp_path / "b.py"
    b.write_text("def f():\n    from auxpretrain import a\n")
    monkeypatch.setitem(MODULES, "auxpretrain.a", str(a))
    monkeypatch.setitem(MODULES, "auxpretrain.b", str(b))
    with pytest.raises(AssertionError, match=r"from auxpretrain.b import _hidden[\s\S]*b\._other"):
        test_no_module_imports_another_modules_private_names()
    with pytest.raises(AssertionError, match="auxpretrain.a -> auxpretrain.b -> auxpretrain.a"):
        test_no_import_circle()


def test_no_source_file_is_ignored_by_git():
    """A module that .gitignore hides works here and is missing from every clone."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout")
    paths = [os.path.relpath(p, ROOT) for p in MODULES.values()]
    for root in ("benchmarks", "examples"):
        paths += [os.path.join(root, f) for f in os.listdir(os.path.join(ROOT, root))
                  if f.endswith((".py", ".sh"))]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.strip() == "", f"ignored by .gitignore: {proc.stdout.split()}"
