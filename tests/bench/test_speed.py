"""The speed benchmark of one mixer's modes (bench/speed.py): rows, capping, reference check, default
mode, stop requests. Timings themselves are never asserted."""
import pytest

from seqbench.analysis.collect import collect_rows
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


def test_a_step_only_run_of_a_gateloop_whose_default_is_chunked_measures_that_mode(tmp_path):
    """head_dim 128 makes chunked GateLoop's default (its instances said so, its class did not)."""
    config = parse_run_config({"kind": "speed", "model": {"name": "gateloop", "d_model": 128, "options": {"heads": 1}},
                               "speed": {"lengths": [16], "repeats": 1, "threads": 1, "decode_prefills": [4],
                                         "measures": ["step"]}})
    assert speed.default_mode(config) == "chunked"
    rows = speed.measure_model(config)
    assert [(row["mode"], row["measure"], row["status"], row["length"]) for row in rows] == [("chunked", "step", "ok", 4)]
