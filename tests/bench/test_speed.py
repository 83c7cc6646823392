"""The speed benchmark of one mixer's modes (bench/speed.py): rows, capping, reference check, default
mode, stop requests. Timings themselves are never asserted."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from seqbench.analysis.collect import collect_rows
from seqbench.bench import speed
from seqbench.bench.config import parse_run_config
from seqbench.bench.runner import run_in_foreground
from seqbench.bench.store import Store


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
    assert (fb["check_error"] < speed.REFERENCE_TOLERANCE).all() and set(fb["backend"]) == {"torch"}
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


# --- deaths and stops (fault tier) ----------------------------------------------------------------
def long_speed_config(tmp_path):
    """A speed run that measures for a while (many repeats) and spawns one worker per mode."""
    data = {"kind": "speed", "model": {"name": "linear_attention", "d_model": 16},
            "speed": {"lengths": [64, 128, 256, 512, 1024], "repeats": 400, "threads": 1, "measures": ["forward_backward"],
                      "modes": ["recurrent", "chunked"], "time_budget_s": 600}}
    path = tmp_path / "speed.json"
    path.write_text(json.dumps(data))
    return parse_run_config(data), path


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_for(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def workers_of(pid: int) -> list[int]:
    """The spawned speed workers of `pid` (multiprocessing's resource tracker is a child too)."""
    return [child for child in children_of(pid)
            if b"multiprocessing.spawn" in Path(f"/proc/{child}/cmdline").read_bytes() and
            b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()]


@pytest.mark.faults
def test_a_worker_killed_from_outside_is_not_recorded_as_out_of_memory(tmp_path):
    """Slurm's kill after the grace period, an operator: the run stays unfinished and a re-launch redoes it."""
    config, _ = long_speed_config(tmp_path)
    killer = threading.Thread(target=lambda: os.kill(wait_for(lambda: workers_of(os.getpid()))[0], signal.SIGKILL))
    killer.start()
    with pytest.raises(speed.WorkerKilled, match="killed by signal 9 and the kernel recorded no out-of-memory kill"):
        run_in_foreground(config, root=tmp_path, sweep="speed")
    killer.join()
    run_dir = Store(tmp_path).run("speed", config.run_id())
    assert not run_dir.is_finished() and run_dir.read_summary() is None


@pytest.mark.faults
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_speed_run_ends_at_a_case_boundary_and_leaves_no_worker_behind(tmp_path, sig):
    _, path = long_speed_config(tmp_path)
    parent = subprocess.Popen([sys.executable, "-m", "seqbench.cli", "--root", str(tmp_path), "run", "--sweep", "speed", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    worker = wait_for(lambda: workers_of(parent.pid))[0]
    time.sleep(1.0)  # measuring
    stopped_at = time.monotonic()
    parent.send_signal(sig)
    parent.wait(timeout=30)
    assert time.monotonic() - stopped_at < 15  # not carried on to the end of the measurement
    wait_for(lambda: not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2], 10)
    config, _ = long_speed_config(tmp_path)
    assert not Store(tmp_path).run("speed", config.run_id()).is_finished()
