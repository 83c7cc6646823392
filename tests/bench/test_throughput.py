"""The LM's optimizer step against length (bench/throughput.py), through a sweep and its report."""
import numpy as np
import pandas as pd
import pytest


def test_throughput_run_measures_the_lm_step_at_matched_parameters_and_reports_it(tmp_path):
    from seqbench.analysis.report import speed_report
    from seqbench.bench.config import parse_run_config
    from seqbench.bench.sweep import expand
    from seqbench.slurm.executors import submit

    base = {"kind": "throughput", "lengths": [16, 64], "tokens_per_step": 128, "repeats": 2, "threads": 1,
            "model": {"n_layers": 1, "mlp_ratio": 2, "target_parameters": 20_000}}
    sweep = expand({"name": "throughput", "base": base,
                    "zip": {"model.name": ["gateloop", "mamba"], "model.options": [{"heads": 4}, {}]}})
    submit(sweep, executor="debug", root=tmp_path, echo=lambda line: None)
    summary, written = speed_report("throughput", tmp_path, tmp_path / "out")
    rows = pd.read_csv(tmp_path / "out" / "throughput.csv")
    assert set(rows["status"]) == {"ok"} and len(rows) == 4
    assert (rows["batch_size"] * rows["length"] == 128).all()
    assert np.allclose(rows["tokens_per_s"], 128 / (rows["median_ms"] / 1000))
    assert rows["parameters"].max() / rows["parameters"].min() - 1 <= 0.04  # each within ±2% of the target
    assert set(summary["model"]) == {"gateloop heads=4", "mamba"} and "× fastest @64" in summary.columns
    assert (tmp_path / "out" / "throughput.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="tokens_per_step \\(8\\) must be at least the longest length \\(64\\)"):
        parse_run_config({**base, "tokens_per_step": 8})
