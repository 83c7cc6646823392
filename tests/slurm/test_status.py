"""Sweep status (slurm/status.py) read from the store alone: each run's state, step, job and error,
counted and listed for the runs a user must look at."""
from seqbench.bench.config import parse_run_config
from seqbench.bench.store import Store
from seqbench.slurm.status import format_status, sweep_status
from tests.helpers import tiny_run_config


def test_each_runs_state_step_job_and_error_and_a_summary_line(tmp_path):
    sweep = Store(tmp_path).sweep("s")
    configs = [parse_run_config(tiny_run_config(seed=seed)) for seed in range(4)]
    done, failed, preempted, listed = (sweep.run(config.run_id()) for config in configs)
    for run_dir, config in zip((done, failed, preempted, listed), configs):
        run_dir.write_config(config.model_dump(mode="json"), {"commit": "0" * 40, "dirty": False})
    done.write_summary({"status": "completed", "steps": 20})
    failed.write_status("failed", step=7, error="RuntimeError: the loss is NaN")
    preempted.write_status("preempted", step=15)
    sweep.record_jobs("local", {preempted.run_id: "4242"})
    rows = {row["run_id"]: row for row in sweep_status("s", tmp_path)}
    assert rows[done.run_id]["state"] == "completed" and rows[done.run_id]["step"] == 20
    assert rows[failed.run_id]["error"] == "RuntimeError: the loss is NaN"
    assert rows[preempted.run_id]["job_id"] == "4242" and rows[listed.run_id]["state"] == "pending"
    text = format_status("s", list(rows.values()))
    assert text.splitlines()[0] == "sweep s: 4 runs — completed 1, failed 1, pending 1, preempted 1"
    assert f"  {failed.run_id} failed at step 7 (job None): RuntimeError: the loss is NaN" in text
    assert f"  {preempted.run_id} preempted at step 15 (job 4242)" in text and done.run_id not in text
