"""Imports flow one way: models ← tasks ← bench ← slurm | analysis ← cli (README, "What is where")."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = {"models": 0, "tasks": 1, "bench": 2, "slurm": 3, "analysis": 3, "seqbench": 4}
FOLDER = {"models": "models", "tasks": "tasks", "bench": "bench", "slurm": "slurm", "analysis": "analysis", "seqbench": "seqbench"}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seqbench"):
            parts = node.module.split(".")
            names.add(parts[1] if len(parts) > 1 else (node.names[0].name if node.names[0].name in LAYER else "seqbench"))
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("seqbench."))
    return {name if name in LAYER else "seqbench" for name in names}


def test_no_import_runs_back_up():
    upward = []
    for package, folder in FOLDER.items():
        for path in (ROOT / folder).rglob("*.py"):
            for target in imported_packages(path):
                if LAYER[target] > LAYER[package] or (LAYER[target] == LAYER[package] and target != package):
                    upward.append(f"{path.relative_to(ROOT)} imports seqbench.{target}")
    assert upward == []


def test_no_plain_top_level_imports_of_the_folders():
    """Code and tests import `seqbench.*` only: a bare `import models` would find a user's own."""
    offenders = []
    for path in [*ROOT.glob("*/**/*.py")]:
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else
                       [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(ROOT)}: {m}" for m in modules if m.split(".")[0] in FOLDER and m.split(".")[0] != "seqbench"]
    assert offenders == []
