"""The wheel a user installs: the seqbench namespace only, every kernel's C++ source inside, working
compiled GateLoop and Mamba paths, and no pin on torch: installed into an environment that already
holds a torch (as a cluster's CUDA environment does), it keeps that torch. Checked in a fresh
virtual environment outside the checkout."""
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
mixer, mamba = models.build("gateloop", d_model=8), models.build("mamba", d_model=8)
mixer(torch.randn(1, 5, 8)), mamba(torch.randn(1, 5, 8))
print(json.dumps({{"backend": mixer.backend_used("recurrent"), "compiled": compiled.available()[0],
                  "mamba": mamba.backend_used("recurrent"),
                  "foreign": [name for name in {FOREIGN!r} if importlib.util.find_spec(name) is not None],
                  "where": str(models.__file__)}}))
"""


@pytest.mark.slow
def test_wheel_installs_the_namespace_with_its_compiled_path(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("seqbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"seqbench/models/gateloop/cpu_kernel.cpp", "seqbench/models/mamba/cpu_kernel.cpp", "seqbench/cli.py"} <= set(names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    torch_requirement = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    assert torch_requirement == ["Requires-Dist: torch>=2.5"]  # a lower bound: a cluster's own torch is kept
    assert {name.split("/")[0] for name in names} == {"seqbench", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    subprocess.run([*pip, "-q", "torch==2.13.0"], check=True, cwd=tmp_path)  # the environment's own torch
    torch_init = next(venv.glob("lib/python*/site-packages/torch/__init__.py"))
    before = torch_init.stat().st_mtime_ns
    installed = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "Requirement already satisfied: torch>=2.5" in installed
    collected = next((line for line in installed.splitlines() if line.startswith("Installing collected packages")), "")
    assert " torch" not in collected and torch_init.stat().st_mtime_ns == before  # kept, not reinstalled
    result = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["compiled"] and report["backend"] == "cpp" and report["mamba"] == "cpp" and report["foreign"] == []
    assert str(venv) in report["where"]  # the installed copy, not the checkout
    listing = subprocess.run([str(venv / "bin" / "seqbench"), "models"], capture_output=True, text=True, cwd=tmp_path)
    assert listing.returncode == 0 and "gateloop  modes:" in listing.stdout


    # a mixer package outside the repository, installed next to the wheel, registers by entry point
    import shutil

    package = shutil.copytree(ROOT / "tests" / "fixtures" / "third_party", tmp_path / "third_party")  # builds leave files
    subprocess.run([*pip, "-q", "--no-deps", "--no-build-isolation", str(package)], check=True, cwd=tmp_path)
    seqbench_cli = str(venv / "bin" / "seqbench")
    listed = subprocess.run([seqbench_cli, "models"], capture_output=True, text=True, cwd=tmp_path).stdout
    assert "decay  modes: recurrent*, parallel  [entry point of seqbench-example-mixers" in listed, listed
    checked = subprocess.run([seqbench_cli, "check", "decay"], capture_output=True, text=True, cwd=tmp_path)
    assert checked.returncode == 0 and "15 passed, 0 failed" in checked.stdout, checked.stdout + checked.stderr
    config = tmp_path / "decay.json"
    config.write_text(json.dumps({"model": {"name": "decay", "d_model": 16, "n_layers": 1},
                                  "task": {"name": "mqar", "options": {"vocab_size": 64, "seq_len": 32, "num_pairs": 2,
                                                                       "validation_examples": 16, "test_examples": 16}},
                                  "steps": 5, "eval_every": 5, "batch_size": 4, "threads": 1}))
    trained = subprocess.run([seqbench_cli, "--root", str(tmp_path / "runs"), "run", str(config)], capture_output=True, text=True,
                             cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
