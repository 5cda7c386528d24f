"""The library does not reach up into the training layer: nothing under spinefm/ imports the
top-level `datamodules` package (what inference shares with training lives in spinefm.data)."""

import ast
from pathlib import Path

SPINEFM = Path(__file__).resolve().parents[1] / "spinefm"


def imported_modules(tree: ast.AST):
    """(line, module) of every absolute import in a parsed file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_no_datamodules_import_under_spinefm():
    offenders = [
        f"{path.relative_to(SPINEFM.parent)}:{line} imports {module}"
        for path in sorted(SPINEFM.rglob("*.py"))
        for line, module in imported_modules(ast.parse(path.read_text(), filename=str(path)))
        if module.split(".")[0] == "datamodules"
    ]
    assert not offenders, "\n".join(offenders)
