"""Executors (slurm/executors.py) without a cluster: local sweeps, dry runs, killed launchers."""

import pytest

from seqbench.analysis.collect import collect
from seqbench.bench.config import parse_run_config
from seqbench.bench.sweep import expand
from seqbench.slurm.executors import submit
from seqbench.slurm.status import sweep_status
from tests.helpers import sweep_spec, tiny_run_config, write_tiny_sweep


@pytest.mark.slow
def test_local_sweep_isolates_a_failing_run_collects_and_skips_what_finished(tmp_path):
    corpus = tmp_path / "gone.txt"  # there when the sweep is configured, deleted before it runs
    corpus.write_bytes(b"some bytes " * 100)
    bytes_run = parse_run_config(tiny_run_config(task={"name": "bytes", "options": {"path": str(corpus), "seq_len": 32}}))
    corpus.unlink()
    sweep = expand(sweep_spec(seeds=[0, 1]))
    sweep = type(sweep)(name="mixed", runs=[*sweep.runs, bytes_run])
    submission = submit(sweep, executor="local", root=tmp_path / "runs", parallel=2, echo=lambda _: None)
    assert list(submission.failed) == [bytes_run.run_id()]
    states = {row["run_id"]: row for row in sweep_status("mixed", tmp_path / "runs")}
    assert sum(row["state"] == "completed" for row in states.values()) == 4
    assert states[bytes_run.run_id()]["state"] == "failed"
    assert "no such file" in states[bytes_run.run_id()]["error"]

    runs_table, curves = collect("mixed", tmp_path / "runs")
    assert len(runs_table) == 5 and set(runs_table["status"]) == {"completed", "failed"}
    assert {"model.name", "optimizer.lr", "final_accuracy", "tokens_per_s", "provenance.commit"} <= set(runs_table.columns)
    assert set(curves["metric"]) >= {"loss", "accuracy", "tokens_per_s"}
    assert (tmp_path / "runs" / "mixed" / "runs.parquet").exists()

    again = submit(sweep, executor="local", root=tmp_path / "runs", echo=lambda _: None)
    assert len(again.finished) == 4 and list(again.submitted) == [bytes_run.run_id()]  # only the failed one again


def test_dry_run_submits_nothing_and_lists_each_runs_axes(tmp_path):
    lines = []
    spec = sweep_spec(grid={"model.name": ["retnet"], "model.options.heads": [1, 2]})
    submission = submit(expand(spec), executor="slurm", root=tmp_path, dry_run=True, echo=lines.append)
    assert submission.submitted == {} and not (tmp_path / "t").exists()
    assert lines[0] == "sweep t: 4 runs, 0 finished, 0 queued or running, 4 to run (slurm)" and all("[would submit]" in l for l in lines[1:])
    assert [line.split("seed=")[1][0] + line.split("state=")[1].split(" ", 1)[1].split("  [")[0] for line in lines[1:]] == [
        "0heads=1", "1heads=1", "0heads=2", "1heads=2"]
    assert all("params=" in line for line in lines[1:])


def test_status_and_the_collected_table_show_each_runs_backend(tmp_path):
    from seqbench.analysis.collect import collect
    from seqbench.bench.config import parse_run_config
    from seqbench.bench.runner import run_in_foreground
    from seqbench.slurm.status import format_status, sweep_status

    for name in ("mamba", "retnet"):
        run_in_foreground(parse_run_config(tiny_run_config(steps=2, model={"name": name, "options": {}})), root=tmp_path,
                          sweep="b", progress=False)
    text = format_status("b", sweep_status("b", tmp_path))
    assert "backend: mamba/recurrent: cpp (1 run)" in text and "backend: retnet/chunked: torch (1 run)" in text
    runs, _ = collect("b", tmp_path)
    assert set(runs["backend"]) == {"mamba/recurrent: cpp", "retnet/chunked: torch"}


def signal_launcher_and_wait(launcher, how: str, workers) -> list:
    """Send the launcher `how`, then give its workers 90 s to go; returns those still there."""
    import os
    import signal
    import time

    os.kill(launcher.pid, getattr(signal, how))
    launcher.wait(timeout=90)
    deadline = time.monotonic() + 90
    while workers() and time.monotonic() < deadline:
        time.sleep(0.5)
    return workers()


@pytest.mark.faults
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_killed_launcher_leaves_no_worker_training(tmp_path, how):
    """SIGTERM stops the launcher's workers as Ctrl-C does; SIGKILL runs no handler, and submitit's local
    job controller outlives it by design — each worker watches its launcher and stops itself. Either
    way, within seconds nothing of the sweep runs and the run is preempted at a checkpoint, resumable."""
    import subprocess
    import sys
    import time

    from seqbench.bench.store import Store

    sweep_file = write_tiny_sweep(tmp_path, "orphans")
    root = tmp_path / "runs"
    launcher = subprocess.Popen([sys.executable, "-m", "seqbench.cli", "--root", str(root), "sweep", str(sweep_file),
                                 "--set", "steps=100000", "--set", "checkpoint_every=20", "--parallel", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def training():
        sweep = Store(root).sweep("orphans")
        if not sweep.exists():
            return []
        return [run_id for run_id in sweep.run_ids() if (sweep.run(run_id).read_status() or {}).get("state") == "running"
                and (sweep.run(run_id).read_status() or {}).get("step", 0) > 0]

    def sweep_processes():
        found = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
        return [pid for pid in found if int(pid) != launcher.pid]

    deadline = time.monotonic() + 120
    while not training() and time.monotonic() < deadline:
        time.sleep(0.5)
    [run_id] = training()
    assert signal_launcher_and_wait(launcher, how, sweep_processes) == [], "a worker outlived its launcher"
    status = Store(root).sweep("orphans").run(run_id).read_status()
    assert status["state"] == "preempted" and (Store(root).sweep("orphans").run(run_id).path / "checkpoint.pt").exists()


SLOW_SPEED_SWEEP = """
name = "orphan-speed"
[base]
kind = "speed"
model = { name = "softmax_attention", d_model = 32 }
speed = { lengths = [64, 128, 256, 512, 1024, 2048, 4096, 8192], batch_size = 2, repeats = 200, threads = 1, time_budget_s = 600.0 }
"""


@pytest.mark.faults
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_killed_speed_launcher_leaves_no_worker_measuring(tmp_path, how):
    """As for a sweep: `seqbench speed`'s worker stops with its launcher, so a relaunch's timings never
    overlap an orphan's; the run reads as preempted (its worker gone), not running."""
    import subprocess
    import sys
    import time

    sweep_file = tmp_path / "speed.toml"
    sweep_file.write_text(SLOW_SPEED_SWEEP)
    root = tmp_path / "runs"
    launcher = subprocess.Popen([sys.executable, "-m", "seqbench.cli", "--root", str(root), "speed", str(sweep_file),
                                 "--out", str(tmp_path / "report")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def workers():
        found = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
        return [pid for pid in found if int(pid) != launcher.pid]

    deadline = time.monotonic() + 120
    while not [row for row in (sweep_status("orphan-speed", root) if (root / "orphan-speed").is_dir() else [])
               if row["state"] == "running" and row["lease"]]:
        assert time.monotonic() < deadline and launcher.poll() is None, "the speed run never started"
        time.sleep(0.5)
    assert signal_launcher_and_wait(launcher, how, workers) == [], "a speed worker outlived its launcher"
    [row] = sweep_status("orphan-speed", root)
    assert row["state"] == "preempted"
