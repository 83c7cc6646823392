"""The GPU check's code path (seqbench/gpu_check.py) on CPU at tiny sizes: every part writes its
table, the numerics agree with float64 here too, and what cannot run here is recorded as such."""
import json

import pandas as pd
import pytest

from seqbench import models
from seqbench.gpu_check import gpu_check


@pytest.mark.slow
def test_the_gpu_check_runs_on_cpu_quick_and_writes_every_table(tmp_path):
    out = tmp_path / "gpu"
    result = gpu_check(device="cpu", quick=True, out=out, root=tmp_path / "runs", tests=False)
    numerics = pd.read_csv(out / "numerics.csv")
    expected = sum(len(models.registry.get_class(name).modes) for name in models.available())
    assert len(numerics) == expected and set(numerics["status"]) == {"ok"}
    assert numerics["output_error"].max() < 1e-4 and numerics["input_grad_error"].max() < 1e-3
    kernels = pd.read_csv(out / "kernels.csv")  # every optional CUDA kernel, each "not measured" without CUDA
    assert set(kernels["status"]) == {"not measured"} and {"gla", "gated_deltanet", "rwkv7", "mamba2"} <= set(kernels["model"])
    bf16 = pd.read_csv(out / "bf16.csv")
    assert set(bf16["model"]) == set(models.available()) and bf16["relative_difference"].max() < 0.05
    speed = pd.read_csv(out / "speed.csv")
    assert set(speed["model"]) == set(models.available()) and (speed["status"] == "ok").any()
    assert (out / "throughput.csv").exists() and (out / "speed.png").exists()
    origin = json.loads((out / "provenance.json").read_text())
    assert origin["quick"] is True and origin["device"] == "cpu" and "packages_optional" in origin
    readme = (out / "README.md").read_text()
    assert "seqbench gpu-check --quick --device cpu" in readme and "cuda tests: not run" in readme
    assert result["summary"]["numerics"].startswith(f"{expected}/{expected} mixer-modes within")
