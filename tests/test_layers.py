"""The library does not reach up into the training layer: nothing under spinefm/ imports the
top-level `datamodules` package (what inference shares with training lives in spinefm.data)."""

import ast
import re
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


def package_of(module: str) -> str | None:
    """spinefm.<package> (or spinefm.<module> for a top-level one) of a spinefm module name."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "spinefm" and len(parts) > 1 else None


def test_packages_import_one_way():
    """No two packages under spinefm/ import each other, directly or round a longer loop."""
    graph: dict[str, set[str]] = {}
    for path in sorted(SPINEFM.rglob("*.py")):
        source = package_of(".".join(path.relative_to(SPINEFM.parent).with_suffix("").parts))
        for _, module in imported_modules(ast.parse(path.read_text(), filename=str(path))):
            target = package_of(module)
            if source and target and target != source:
                graph.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    cycles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if reaches(b, a, {b}))
    assert not cycles, "\n".join(cycles)


def test_no_text_names_a_document_outside_the_repository():
    """Every *.md a source file, config or document names exists in the repository."""
    repo = SPINEFM.parent
    texts = [
        p
        for pattern in ("spinefm/**/*.py", "datamodules/*.py", "*.py", "configs/**/*.yaml", "*.md", "docs/*.md")
        for p in repo.glob(pattern)
    ]
    missing = [
        f"{path.relative_to(repo)} names {name}"
        for path in texts
        for name in re.findall(r"[\w./-]+\.md\b", path.read_text())
        if not any((base / name).is_file() for base in (repo, repo / "docs", path.parent))
    ]
    assert not missing, "\n".join(missing)


def test_the_pipeline_core_imports_no_torch():
    """The loop, repairs and decoder are numpy: torch stays behind the components, directly or not."""
    core = SPINEFM / "pipeline" / "core"
    heavy = ("torch", "torchvision", "lightning")

    def spinefm_file(module: str) -> Path | None:
        path = SPINEFM.parent.joinpath(*module.split("."))
        return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)

    offenders, seen, todo = [], set(), sorted(core.rglob("*.py"))
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for line, module in imported_modules(ast.parse(path.read_text(), filename=str(path))):
            if module.split(".")[0] in heavy:
                offenders.append(f"{path.relative_to(SPINEFM.parent)}:{line} imports {module}")
            elif module.split(".")[0] == "spinefm" and (found := spinefm_file(module)):
                todo.append(found)
    assert not offenders, "\n".join(offenders)
