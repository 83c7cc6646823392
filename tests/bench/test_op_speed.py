"""GateLoop's op benchmark (bench/op_speed.py): one row per implementation and length, the traffic
floor and the float64 check at the requested length."""
from seqbench.bench.config import parse_run_config
from seqbench.bench.op_speed import gateloop_op_benchmark
from seqbench.models.gateloop.implementations import IMPLEMENTATIONS


def test_gateloop_op_benchmark_rows_carry_the_floor_and_the_gradient_check():
    config = parse_run_config({"kind": "gateloop_op", "lengths": [32, 64], "batch_size": 2, "channels": 8, "repeats": 2,
                               "threads": 1, "check_gradients_at": 64,
                               "implementations": ["default (compiled recurrent)", "odd/even recursive scan (re-implementation)"]})
    rows = gateloop_op_benchmark(config)
    assert [(r["implementation"], r["length"]) for r in rows] == [
        ("default (compiled recurrent)", 32), ("default (compiled recurrent)", 64),
        ("odd/even recursive scan (re-implementation)", 32), ("odd/even recursive scan (re-implementation)", 64)]
    assert all(r["traffic_floor_ms"] > 0 and r["copy_bandwidth_gb_s"] > 0 for r in rows)
    assert all(r["max_relative_error_vs_float64"] < 1e-5 for r in rows if r["length"] == 64)




def test_every_listed_implementation_runs_what_it_names_and_matches_float64():
    config = parse_run_config({"kind": "gateloop_op", "lengths": [33], "batch_size": 1, "channels": 4, "repeats": 1,
                               "threads": 1, "check_gradients_at": 33})
    rows = gateloop_op_benchmark(config)
    assert [row["implementation"] for row in rows] == list(IMPLEMENTATIONS)
    assert all(row["status"] == "ok" and row["max_relative_error_vs_float64"] < 1e-5 for row in rows)
