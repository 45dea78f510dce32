"""The study package's import graph, read from the source with ``ast`` (nothing imported):
module -> the ``study`` modules it imports, at module level or everywhere (imports inside
functions included). ``from study.x import y`` counts as importing ``study.x.y`` where that
is a module, else ``study.x``; importing ``study.a.b`` also runs the package ``study.a``."""
from __future__ import annotations

import ast
from pathlib import Path

from study import paths

PACKAGE = paths.ROOT / "study"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(paths.ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _module_level(tree: ast.Module):
    """Statements run at import: the module body, with the bodies of its if/try blocks."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        for name in ("body", "orelse", "finalbody", "handlers"):
            if isinstance(node, (ast.If, ast.Try, ast.ExceptHandler)):
                stack.extend(getattr(node, name, []))


def _targets(nodes, name: str, path: Path, known) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                out.add(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target)
    return {m for m in out if m in known and m != name}


def imports(name: str, path: Path, known: dict[str, Path], module_level: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return _targets(_module_level(tree) if module_level else ast.walk(tree), name, path, known)


def function_imports(name: str, functions) -> set[str]:
    """What module ``name`` imports at module level plus inside ``functions`` and the module's
    own functions they call (by name), transitively: an entry module followed function by
    function (``python -m study models`` runs ``cli.cmd_models``, not ``cli.cmd_methods``)."""
    known = modules()
    path = known[name]
    tree = ast.parse(path.read_text(), str(path))
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    out = _targets(_module_level(tree), name, path, known)
    seen, todo = set(), list(functions)
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        body = list(ast.walk(defs[f]))
        out |= _targets(body, name, path, known)
        todo += [n.func.id for n in body if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id in defs]
    return out


def graph(module_level: bool) -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known, module_level) for name, path in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def closure(roots, g: dict[str, set[str]]) -> set[str]:
    """Every module that importing ``roots`` may run: their imports, transitively, and the
    packages above each of them."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(g[m])
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in g)
    return seen


def dynamic_importers() -> set[str]:
    """Modules that import by a computed name (``importlib.import_module``, ``__import__``)."""
    out = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if called in ("import_module", "__import__"):
                    out.add(name)
    return out


def layout() -> str:
    """docs/layout.md: per finding, its module, the helper modules only it imports (its own
    code), its notebook, stage, data and figures; then the shared layers (modules two or more
    findings import). Regenerate: ``python tests/study_imports.py > docs/layout.md``."""
    from study import stages

    g = graph(module_level=False)
    own = {f: closure([stages.module_of(f)], g) for f in stages.findings()}
    users: dict[str, set[str]] = {}
    for f, mods in own.items():
        for m in mods:
            users.setdefault(m, set()).add(f)
    lines = ["# Where each finding lives", "",
             "Generated by `python tests/study_imports.py > docs/layout.md` from the import graph and the stage",
             "registry (`study/stages.py`); `tests/test_imports.py` fails when it is stale. One name per finding:",
             "module, notebook, DVC stage, `data/<device>/<name>/` and `figures/<device>/<name>/`.", "",
             "| finding | module | its own helpers (imported by no other finding) | notebook |", "|---|---|---|---|"]
    for f in stages.findings():
        mod = stages.module_of(f)
        helpers = sorted(m for m in own[f] if users[m] == {f} and m != mod)
        lines.append(f"| `{f}` | `{mod}` | {', '.join(f'`{m}`' for m in helpers) or '-'} | "
                     f"`notebooks/{stages.notebook_of(f)}` |")
    shared = sorted(m for m, u in users.items() if len(u) > 1 and m != "study")
    lines += ["", "Shared layers (imported by two or more findings, directly or through others):", ""]
    lines += [f"* `{m}` ({len(users[m])} findings)" for m in shared]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(layout(), end="")
