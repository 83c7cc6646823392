"""The README's steps for a mixer inside this repository — a file in models/ with @register, one
import in models/__init__.py — leave the generic suites green for it: run on a copy of the tree
with the example mixer added (the copy's package first on the path, ahead of the editable install)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("models", "tasks", "bench", "slurm", "analysis")
EXAMPLE = ROOT / "tests" / "fixtures" / "third_party" / "seqbench_example_mixers" / "decay.py"


@pytest.mark.slow
def test_a_mixer_added_by_the_readmes_steps_passes_the_generic_suites(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info", "__pycache__"))
    source = EXAMPLE.read_text().split("\n\nclass PeekingMixer")[0]  # the working mixer only
    source = source.replace("from seqbench.models import Mixer", "from seqbench.models.base import Mixer\n"
                            "from seqbench.models.registry import register")
    (repo / "models" / "ema_example.py").write_text(source.replace("class DecayMixer(Mixer):", '@register("ema_example")\nclass DecayMixer(Mixer):'))
    init = repo / "models" / "__init__.py"
    anchor = "from seqbench.models.backbone import"  # the README's step: one import line beside the built-in mixers'
    assert anchor in init.read_text(), "models/__init__.py changed: place the example's import elsewhere"
    init.write_text(init.read_text().replace(anchor, "from seqbench.models import ema_example  # noqa: F401\n" + anchor))
    package = repo / "seqbench"  # the copy's folders as its seqbench.* namespace, found first (the working directory)
    for folder in FOLDERS:
        os.symlink(repo / folder, package / folder)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    where = subprocess.run([sys.executable, "-c", "import seqbench.models as m; print(m.__file__, 'ema_example' in m.available())"],
                           env=env, capture_output=True, text=True, cwd=repo)
    assert where.stdout.split() == [str(package / "models" / "__init__.py"), "True"], where.stderr
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "ema_example",
                           "tests/models/test_mixer_interface.py", "tests/bench/test_training.py", "tests/models/test_fair.py"],
                          env=env, capture_output=True, text=True, cwd=repo, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1] and " failed" not in done.stdout.splitlines()[-1]
