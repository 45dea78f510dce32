"""The repository is self-contained: no file a clone holds refers to a document outside it.
The paper's claims and the methods are docs/paper.md and docs/methods.md; code, notebooks and
docs cite those. Checked: the names of the outside notes (``OUTSIDE_NAMES``, in Markdown),
relative paths that climb out of the repository (or to nothing it holds), and absolute paths into the workspace."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from study import paths

# the notes' names are spelled in pieces so that this file does not cite them itself
OUTSIDE_NAMES = ("PAPER", "METHODS", "STYLE")
OUTSIDE_NOTES = re.compile(r"\b(" + "|".join(OUTSIDE_NAMES) + r")\.md\b")
CLIMB = re.compile(r"(?<![\w.])((?:\.\./)+[\w.-][\w./-]*)")
ABSOLUTE = re.compile(r"(?<![\w.])/work/")
HOSTILE_EXAMPLES = {"../../etc/passwd", "../x"}   # values the tests and README show being refused
TEXT = {".py", ".md", ".ipynb", ".yaml", ".yml", ".toml", ".sh", ".txt", ".cfg", ".html", ".json"}


def repo_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=paths.ROOT, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    return [paths.ROOT / f for f in out if f and (paths.ROOT / f).is_file()
            and ((paths.ROOT / f).suffix in TEXT or (paths.ROOT / f).parent.name in ("scripts", ".ci"))
            and not f.startswith(("data/reference/", "peers/"))]


def outside_references(path: Path, text: str) -> list[str]:
    found = [m.group(0) for m in OUTSIDE_NOTES.finditer(text)]
    found += [m.group(0) for m in ABSOLUTE.finditer(text)]
    root = paths.ROOT.resolve()
    for m in CLIMB.finditer(text):
        rel = m.group(1).rstrip(".")
        if rel in HOSTILE_EXAMPLES:
            continue
        # relative to the file or to the repository root (where stages and notebooks run):
        # fine where it names something the repository holds
        targets = [(base / rel).resolve() for base in (path.parent, paths.ROOT)]
        if not any(t.exists() and root in (t, *t.parents) for t in targets):
            found.append(rel)
    return found


def test_no_file_refers_to_a_document_outside_the_repository():
    me = Path(__file__).resolve()
    bad = {}
    for f in repo_files():
        if f.resolve() == me:
            continue
        hits = outside_references(f, f.read_text(errors="replace"))
        if hits:
            bad[str(f.relative_to(paths.ROOT))] = hits
    assert not bad, bad


def test_the_check_finds_each_kind():
    nb = paths.ROOT / "notebooks" / "x.ipynb"
    note = OUTSIDE_NAMES[0] + ".md"
    climb = "../" + "shared/" + note
    assert outside_references(nb, f"see `{climb}`") == [note, climb]
    assert outside_references(nb, "see ../docs/paper.md and docs/methods.md") == []
    assert outside_references(nb, "in /work/elsewhere/notes") == ["/work/"]


def test_the_project_s_own_documents_exist():
    for doc in ("paper.md", "methods.md", "claims.md"):
        assert (paths.ROOT / "docs" / doc).is_file(), doc
