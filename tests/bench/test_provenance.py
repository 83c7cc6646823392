"""Where a number came from (bench/provenance.py): a run records which kernels it had, and why a
layer fell back to PyTorch."""
import json
import os
import subprocess
import sys

from seqbench.bench.config import parse_run_config
from seqbench.bench.store import Store
from tests.helpers import tiny_run_config


def test_a_run_without_a_compiler_records_the_fallback_beside_each_layers_backend(tmp_path):
    data = tiny_run_config(steps=2, model={"name": "mamba", "options": {}})
    (tmp_path / "run.json").write_text(json.dumps(data))
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python")
    env = {**os.environ, "PATH": str(bare), "CXX": "", "SEQBENCH_BUILD_DIR": str(tmp_path / "builds")}
    done = subprocess.run([sys.executable, "-m", "seqbench.cli", "--root", str(tmp_path / "runs"), "run", str(tmp_path / "run.json")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "no C++ compiler (c++/g++) on PATH — using PyTorch" in done.stderr  # warned once
    assert "compiler not compatible" not in done.stderr
    stored = Store(tmp_path / "runs").run("single", parse_run_config(data).run_id()).read_config()
    assert stored["provenance"]["layers"] == [{"mixer": "mamba", "mode": "recurrent", "backend": "torch"}]
    reasons = list(stored["provenance"]["kernels"].values())
    assert reasons == ["no C++ compiler (c++/g++) on PATH — using PyTorch"]
