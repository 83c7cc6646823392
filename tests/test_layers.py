"""Imports flow one way: core ← models ← tasks ← bench ← slurm | analysis ← orchestration (campaign, compare,
gpu-check) ← cli (README, "What is where")."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# seqbench.<name> → its layer; "seqbench" stands for the package's own top modules (cli), "core" for seqbench/core.py
LAYER = {"core": 0, "models": 1, "tasks": 2, "bench": 3, "slurm": 4, "analysis": 4, "seqbench": 5}
FOLDERS = {"models": "models", "tasks": "tasks", "bench": "bench", "slurm": "slurm", "analysis": "analysis"}


def imported_packages(path: Path) -> set[str]:
    """Every seqbench package a file imports, by any name it imports: `from seqbench import a, b`
    counts a and b; `from seqbench.a.x import y` and `import seqbench.a.x` count a."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "seqbench":
            parts = node.module.split(".")
            names.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("seqbench."))
    return {name if name in LAYER else "seqbench" for name in names}


def upward_imports(root: Path) -> list[str]:
    """Each import of a package from a lower (or a sibling) layer, as 'file imports seqbench.x'."""
    found = []
    sources = [(package, path) for package, folder in FOLDERS.items() for path in (root / folder).rglob("*.py")]
    sources += [("core", root / "seqbench" / "core.py")] if (root / "seqbench" / "core.py").exists() else []
    for package, path in sources:
        for target in imported_packages(path):
            if LAYER[target] > LAYER[package] or (LAYER[target] == LAYER[package] and target != package):
                found.append(f"{path.relative_to(root)} imports seqbench.{target}")
    return sorted(found)


def test_no_import_runs_back_up():
    assert upward_imports(ROOT) == []


def test_a_planted_upward_import_is_caught_by_any_name_it_imports(tmp_path):
    for folder in (*FOLDERS.values(), "seqbench"):
        (tmp_path / folder).mkdir()
    (tmp_path / "seqbench" / "core.py").write_text("import json\n")
    (tmp_path / "tasks" / "planted.py").write_text("from seqbench import core, models, bench\n")
    (tmp_path / "models" / "planted.py").write_text("import seqbench.tasks.base\n")
    (tmp_path / "bench" / "fine.py").write_text("from seqbench.models import registry\nfrom seqbench import tasks\n")
    (tmp_path / "seqbench" / "core.py").write_text("from seqbench.models.registry import MIXERS\n")
    assert upward_imports(tmp_path) == ["models/planted.py imports seqbench.tasks", "seqbench/core.py imports seqbench.models",
                                        "tasks/planted.py imports seqbench.bench"]


def test_no_plain_top_level_imports_of_the_folders():
    """Code and tests import `seqbench.*` only: a bare `import models` would find a user's own."""
    offenders = []
    for path in [*ROOT.glob("*/**/*.py")]:
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else
                       [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(ROOT)}: {m}" for m in modules if m.split(".")[0] in FOLDERS]
    assert offenders == []


# what only orchestration (seqbench/campaign.py, compare.py, gpu_check.py) may drive: the CLI parses
# arguments and makes one library call per subcommand
CLI_FORBIDDEN = ("seqbench.bench.store", "seqbench.slurm.executors", "seqbench.analysis.findings.planning",
                 "seqbench.analysis.collect.collect_all")


def imported_modules(path: Path) -> set[str]:
    """Every dotted seqbench name a file imports (`from a.b import c` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("seqbench"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("seqbench"))
    return names


def test_the_cli_drives_no_store_executor_or_planning_itself():
    assert sorted(imported_modules(ROOT / "seqbench" / "cli.py") & set(CLI_FORBIDDEN)) == []


def test_orchestration_never_imports_the_cli():
    for name in ("campaign", "compare", "gpu_check"):
        assert "seqbench.cli" not in imported_modules(ROOT / "seqbench" / f"{name}.py"), name


def test_no_module_outgrows_the_house_limit():
    """~350 lines a module (kernels aside): one idea per file, read in one sitting."""
    long = [f"{path.relative_to(ROOT)}: {n}" for folder in (*FOLDERS.values(), "seqbench") for path in (ROOT / folder).rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 350]
    assert long == []
