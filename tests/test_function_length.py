"""No function in ``study/`` is longer than 100 lines (issue 18): a longer one is split into
helpers that each have one responsibility. A function's length runs from its ``def`` line to
its last line (docstring, comments and blank lines inside it included; decorators not)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 100


def function_lengths(root: Path, folder: str = "study") -> dict[str, int]:
    """``"path:qualified name" -> lines`` of every function and method under ``root/folder``."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, path: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    out[f"{path}:{name}"] = child.end_lineno - child.lineno + 1
                visit(child, path, name + ".")
            else:
                visit(child, path, prefix)

    for f in sorted((root / folder).rglob("*.py")):
        path = f.relative_to(root).as_posix()
        visit(ast.parse(f.read_text(encoding="utf-8"), filename=path), path, "")
    return out


def too_long(lengths: dict[str, int], limit: int = LIMIT) -> dict[str, int]:
    return {k: n for k, n in lengths.items() if n > limit}


def test_no_function_over_the_limit():
    offenders = {k: n for k, n in too_long(function_lengths(ROOT)).items()}
    assert not offenders, (f"functions over {LIMIT} lines (split them into helpers): "
                           + ", ".join(f"{k} ({n} lines)" for k, n in sorted(offenders.items())))


def test_lengths_are_counted_per_function_and_method(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT - 1))
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "m.py").write_text(
        f"def long():\n{body}\n    return x0\n\n\n"                                # 101 lines
        "class K:\n    def short(self):\n        return 1\n\n"
        "    @property\n    def nested(self):\n        def inner():\n            return 2\n        return inner()\n")
    lengths = function_lengths(tmp_path)
    assert lengths == {"study/m.py:long": LIMIT + 1, "study/m.py:K.short": 2, "study/m.py:K.nested": 4,
                       "study/m.py:K.nested.inner": 2}
    assert too_long(lengths) == {"study/m.py:long": LIMIT + 1}
