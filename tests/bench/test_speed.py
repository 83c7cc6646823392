"""The speed benchmark's logic: rows, capping, reference check, fits. Timings themselves are never asserted."""
import math

import numpy as np
import pandas as pd
import pytest

from seqbench.analysis.collect import collect_rows
from seqbench.analysis.speed_plots import crossover_length, fit_exponent, speed_summary
from seqbench.bench import speed
from seqbench.bench.config import parse_run_config
from seqbench.bench.runner import run_in_foreground


def speed_config(**spec):
    return parse_run_config({"kind": "speed", "model": {"name": "linear_attention", "d_model": 16},
                             "speed": {"lengths": [16, 32, 64], "repeats": 2, "threads": 1,
                                       "decode_prefills": [8, 64], **spec}})


def test_a_speed_run_writes_rows_that_collect_reads(tmp_path):
    config = speed_config(modes=["chunked"])
    summary = run_in_foreground(config, root=tmp_path, sweep="speed")
    assert summary["status"] == "completed" and summary["row_statuses"] == ["ok"]
    table = collect_rows("speed", tmp_path)
    fb = table[table["measure"] == "forward_backward"]
    assert list(fb["length"]) == [16, 32, 64] and (fb["median_ms"] > 0).all() and (fb["iqr_ms"] >= 0).all()
    assert (fb["check_error"] < speed.CHECK_TOLERANCE).all() and set(fb["backend"]) == {"torch"}
    assert sorted(table[table["measure"] == "step"]["length"]) == [8, 64]  # decode after each prefill
    assert table["provenance.device_name"].notna().all() and table["provenance.torch"].notna().all()


def test_cases_over_the_time_budget_become_capped_rows():
    rows = []
    config = speed_config(time_budget_s=1e-9, lengths=[8, 16, 32, 64])
    speed.measure_mode(config.model_dump(mode="json"), "parallel", rows.append)
    fb = [row for row in rows if row["measure"] == "forward_backward"]
    assert [row["status"] for row in fb] == ["ok", "capped_time", "capped_time", "capped_time"]  # one point: quadratic


def test_a_mode_that_disagrees_with_its_reference_is_reported_not_timed(monkeypatch):
    monkeypatch.setattr(speed, "check_mode", lambda mixer, mode, device: 0.5)
    rows = []
    speed.measure_mode(speed_config().model_dump(mode="json"), "recurrent", rows.append)
    assert {row["status"] for row in rows} == {"incorrect"} and all("median_ms" not in row for row in rows)


def test_check_mode_measures_the_error_against_the_reference():
    from seqbench import models

    mixer = models.build("retnet", d_model=16)
    assert speed.check_mode(mixer, "chunked", speed.torch.device("cpu")) < 1e-5
    broken_forward = mixer._forward
    mixer._forward = lambda x, mode: (broken_forward(x, mode)[0] * 1.01, None)
    assert speed.check_mode(mixer, "chunked", speed.torch.device("cpu")) == pytest.approx(0.01, rel=1e-3)


def test_bad_speed_specs():
    with pytest.raises(ValueError, match="speed.lengths must be positive and increasing"):
        speed_config(lengths=[64, 32])
    with pytest.raises(ValueError, match="speed.modes: unknown mode 'scan' for mixer 'linear_attention'"):
        speed_config(modes=["scan"])
    with pytest.raises(ValueError, match="a speed run measures one mixer"):
        parse_run_config({"kind": "speed", "model": {"name": ["retnet", "retnet"], "n_layers": 2}})


def test_exponent_fit_and_crossover():
    lengths = [256, 1024, 4096, 16384]
    assert fit_exponent(lengths, [3 * l for l in lengths]) == pytest.approx(1.0)
    assert fit_exponent(lengths, [l**2 / 7 for l in lengths]) == pytest.approx(2.0)
    linear = pd.Series({l: 0.01 * l for l in lengths})
    quadratic = pd.Series({l: 1e-5 * l**2 for l in lengths})  # equal at L = 1000
    assert crossover_length(linear, quadratic) == pytest.approx(1000, rel=1e-9)
    assert crossover_length(quadratic, linear) is None


def test_speed_summary_reports_exponents_crossovers_and_capped_lengths():
    rows = []
    for l in (256, 1024, 4096):
        rows.append({"model": "softmax_attention", "mode": "parallel", "backend": "sdpa", "length": l, "measure": "forward_backward",
                     "status": "ok", "median_ms": 1e-5 * l**2, "peak_memory_bytes": 10.0 * l})
        rows.append({"model": "gateloop", "mode": "recurrent", "backend": "cpp", "length": l, "measure": "forward_backward",
                     "status": "ok", "median_ms": 0.01 * l, "peak_memory_bytes": 20.0 * l})
    rows.append({"model": "gateloop", "mode": "attention", "backend": "torch", "length": 16384, "measure": "forward_backward",
                 "status": "capped_memory"})
    summary = speed_summary(pd.DataFrame(rows)).set_index(["model", "mode"])
    assert summary.loc[("gateloop", "recurrent"), "time_exponent"] == pytest.approx(1.0)
    assert summary.loc[("softmax_attention", "parallel"), "time_exponent"] == pytest.approx(2.0)
    assert summary.loc[("gateloop", "recurrent"), "crossover_vs_softmax"] == pytest.approx(1000, rel=1e-9)
    assert summary.loc[("gateloop", "attention"), "not_measured"] == "16384:capped_memory"
    assert math.isnan(summary.loc[("gateloop", "attention"), "time_exponent"]) or summary.loc[("gateloop", "attention"), "time_exponent"] is None


def test_gateloop_op_benchmark_rows_carry_the_floor_and_the_gradient_check():
    config = parse_run_config({"kind": "gateloop_op", "lengths": [32, 64], "batch_size": 2, "channels": 8, "repeats": 2,
                               "threads": 1, "check_gradients_at": 64,
                               "implementations": ["default (compiled recurrent)", "odd/even recursive scan (re-implementation)"]})
    rows = speed.gateloop_op_benchmark(config)
    assert [(r["implementation"], r["length"]) for r in rows] == [
        ("default (compiled recurrent)", 32), ("default (compiled recurrent)", 64),
        ("odd/even recursive scan (re-implementation)", 32), ("odd/even recursive scan (re-implementation)", 64)]
    assert all(r["traffic_floor_ms"] > 0 and r["copy_bandwidth_gb_s"] > 0 for r in rows)
    assert all(r["max_relative_error_vs_float64"] < 1e-5 for r in rows if r["length"] == 64)


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
