"""The wheel a user installs: the seqbench namespace only, the C++ source inside, a working
compiled GateLoop path — checked in a fresh virtual environment outside the checkout."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOREIGN = ("models", "tasks", "bench", "slurm", "analysis", "benchmarks", "tests")

CHECK = f"""
import importlib.util, json, torch
import seqbench.models as models
from seqbench.models.gateloop import compiled
mixer = models.build("gateloop", d_model=8)
mixer(torch.randn(1, 5, 8))
print(json.dumps({{"backend": mixer.backend_used("recurrent"), "compiled": compiled.available()[0],
                  "foreign": [name for name in {FOREIGN!r} if importlib.util.find_spec(name) is not None],
                  "where": str(models.__file__)}}))
"""


@pytest.mark.slow
def test_wheel_installs_the_namespace_with_its_compiled_path(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("seqbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "seqbench/models/gateloop/cpu_kernel.cpp" in names and "seqbench/cli.py" in names
    assert {name.split("/")[0] for name in names} == {"seqbench", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0", str(wheel)], check=True, cwd=tmp_path)
    result = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["compiled"] and report["backend"] == "cpp" and report["foreign"] == []
    assert str(venv) in report["where"]  # the installed copy, not the checkout
    listing = subprocess.run([str(venv / "bin" / "seqbench"), "models"], capture_output=True, text=True, cwd=tmp_path)
    assert listing.returncode == 0 and "gateloop  modes:" in listing.stdout
