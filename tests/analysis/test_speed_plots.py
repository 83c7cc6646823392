"""The speed report's fits (analysis/speed_plots.py): exponents, crossovers, capped lengths."""
import math

import pandas as pd
import pytest

from seqbench.analysis.speed_plots import crossover_length, fit_exponent, speed_summary


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
