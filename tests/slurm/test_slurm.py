"""Against a real one-node Slurm cluster (slurm/cluster.sh; CI starts it): job arrays, failures,
preemption with requeue and resume, cancellation, and re-submission of a finished sweep."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import submitit

from seqbench.analysis.collect import collect
from seqbench.bench.config import parse_run_config
from seqbench.bench.store import Store
from seqbench.bench.sweep import Sweep, expand
from seqbench.slurm.executors import submit
from seqbench.slurm.status import sweep_status
from tests.helpers import tiny_run_config

pytestmark = pytest.mark.slurm
TERMINAL = {"completed", "diverged", "failed", "cancelled"}
SLURM = {"timeout_min": 10, "cpus_per_task": 1}


@pytest.fixture(scope="module", autouse=True)
def cluster():
    reachable = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    if not reachable:
        if os.environ.get("CI"):
            pytest.fail("CI must start the Slurm cluster first: slurm/cluster.sh install && slurm/cluster.sh start")
        pytest.skip("no Slurm cluster here; start one with: sudo slurm/cluster.sh install && sudo slurm/cluster.sh start")


def wait_for(sweep, root, predicate, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = sweep_status(sweep, root)
        if predicate(rows):
            return rows
        time.sleep(1)
    raise AssertionError(f"timed out; last status: {sweep_status(sweep, root)}")


def all_terminal(rows):
    return all(row["state"] in TERMINAL for row in rows)


def test_job_array_completes_isolates_a_failure_collects_and_is_not_resubmitted(tmp_path):
    root = tmp_path / "runs"
    good = expand({"name": "array", "seeds": [0, 1], "base": tiny_run_config(),
                   "grid": {"model.name": ["retnet", "linear_attention"]}, "executor": SLURM})
    corpus = tmp_path / "gone.txt"  # there when the sweep is configured, deleted before the job runs
    corpus.write_bytes(b"some bytes " * 100)
    failing = parse_run_config(tiny_run_config(task={"name": "bytes", "options": {"path": str(corpus), "seq_len": 16}}))
    corpus.unlink()
    sweep = Sweep(name="array", runs=[*good.runs, failing], executor=SLURM)
    submission = submit(sweep, executor="slurm", root=root, echo=lambda _: None)
    job_ids = set(submission.submitted.values())
    assert len(job_ids) == 5 and len({job_id.split("_")[0] for job_id in job_ids}) == 1  # one job array

    rows = {row["run_id"]: row for row in wait_for("array", root, all_terminal)}
    assert rows.pop(failing.run_id())["state"] == "failed"
    assert all(row["state"] == "completed" for row in rows.values())
    runs_table, _ = collect("array", root)
    assert len(runs_table) == 5 and runs_table["provenance.slurm_job_id"].notna().sum() == 5

    again = submit(good, executor="slurm", root=root, echo=lambda _: None)
    assert again.submitted == {} and len(again.finished) == 4


def test_preempted_run_is_requeued_and_resumes_without_losing_or_repeating_steps(tmp_path):
    root = tmp_path / "runs"
    config = parse_run_config(tiny_run_config(steps=3000, checkpoint_every=25, eval_every=1000))
    submission = submit(Sweep("preempt", [config], SLURM), executor="slurm", root=root, echo=lambda _: None)
    job = submitit.SlurmJob(folder=Store(root).sweep("preempt").submitit_folder, job_id=submission.submitted[config.run_id()])
    run_dir = Store(root).run("preempt", config.run_id())
    deadline = time.time() + 180
    while len(run_dir.read_metrics()) < 100:  # metrics reach disk with each checkpoint
        assert time.time() < deadline, f"the run did not start: {sweep_status('preempt', root)}"
        time.sleep(0.2)
    job._interrupt()  # SIGTERM then USR2, as Slurm does on preemption

    wait_for("preempt", root, lambda rows: rows[0]["state"] == "preempted", timeout=60)
    rows = wait_for("preempt", root, all_terminal)
    assert rows[0]["state"] == "completed"
    summary = run_dir.read_summary()
    assert summary["steps"] == 3000 and len(summary["resumed_from"]) == 1 and summary["resumed_from"][0] >= 100
    steps = [row["step"] for row in run_dir.read_metrics() if row["split"] == "train"]
    assert steps == list(range(1, 3001))


def test_cancelled_run_shows_as_cancelled(tmp_path):
    root = tmp_path / "runs"
    config = parse_run_config(tiny_run_config(steps=1_000_000, checkpoint_every=100, eval_every=100_000))
    submission = submit(Sweep("cancel", [config], SLURM), executor="slurm", root=root, echo=lambda _: None)
    wait_for("cancel", root, lambda rows: rows[0]["state"] == "running", timeout=120)
    submitit.SlurmJob(folder=Store(root).sweep("cancel").submitit_folder, job_id=submission.submitted[config.run_id()]).cancel()
    rows = wait_for("cancel", root, lambda rows: rows[0]["state"] == "cancelled", timeout=120)
    assert rows[0]["slurm_state"].startswith("CANCELLED")


def test_resubmitting_a_running_sweep_submits_nothing_and_cancel_reaches_every_job(tmp_path):
    root = tmp_path / "runs"
    config = parse_run_config(tiny_run_config(steps=1_000_000, checkpoint_every=100, eval_every=100_000))
    sweep = Sweep("busy", [config], SLURM)
    first = submit(sweep, executor="slurm", root=root, echo=lambda _: None)
    again = submit(sweep, executor="slurm", root=root, echo=lambda _: None)  # queued: nothing new
    assert again.submitted == {} and config.run_id() in again.busy
    wait_for("busy", root, lambda rows: rows[0]["state"] == "running", timeout=120)
    third = submit(sweep, executor="slurm", root=root, echo=lambda _: None)  # running: nothing new
    assert third.submitted == {} and "running" in third.busy[config.run_id()]
    from seqbench.slurm.status import cancel

    assert cancel("busy", root) == [first.submitted[config.run_id()]]
    wait_for("busy", root, lambda rows: rows[0]["state"] == "cancelled", timeout=120)


@pytest.mark.parametrize("how", ["scontrol requeue", "scancel --signal=USR2"])
def test_a_requeued_job_resumes_with_continuous_steps(tmp_path, how):
    root = tmp_path / "runs"
    config = parse_run_config(tiny_run_config(steps=2500, checkpoint_every=25, eval_every=1000, seed=7))
    submission = submit(Sweep("requeue", [config], SLURM), executor="slurm", root=root, echo=lambda _: None)
    job_id = submission.submitted[config.run_id()]
    run_dir = Store(root).run("requeue", config.run_id())
    deadline = time.time() + 180
    while len(run_dir.read_metrics()) < 100:
        assert time.time() < deadline, f"the run did not start: {sweep_status('requeue', root)}"
        time.sleep(0.2)
    command = ["scontrol", "requeue", job_id] if how == "scontrol requeue" else ["scancel", "--signal=USR2", job_id]
    subprocess.run(command, check=True)
    rows = wait_for("requeue", root, all_terminal, timeout=300)
    assert rows[0]["state"] == "completed"
    summary = run_dir.read_summary()
    assert summary["steps"] == 2500 and len(summary["resumed_from"]) >= 1
    assert [row["step"] for row in run_dir.read_metrics() if row["split"] == "train"] == list(range(1, 2501))


SETUP_SWEEP = """
name = "setup"
seeds = [0]

[base]
steps = 4
batch_size = 4
eval_every = 4
threads = 1
model = { name = "retnet", d_model = 16, n_layers = 1, mlp_ratio = 0, options = { heads = 2 } }
task = { name = "mqar", options = { vocab_size = 64, seq_len = 32, num_pairs = 2, validation_examples = 16, test_examples = 16 } }

[executor]
timeout_min = 10
setup = ["export LOADEDMODULES=cuda/12.4:seqbench-test"]
additional_parameters = { nice = 7 }
"""


def test_setup_lines_and_additional_sbatch_options_reach_the_job(tmp_path):
    """A setup line's effect is what the job runs with (here: a module environment it exports, which
    the run's provenance records), and an additional #SBATCH option is what Slurm holds for the job
    (scontrol show job)."""
    from seqbench.bench.sweep import load_sweep

    assert "LOADEDMODULES" not in os.environ  # so the job can have it only from the setup line
    root, path = tmp_path / "runs", tmp_path / "setup.toml"
    path.write_text(SETUP_SWEEP)
    sweep = load_sweep(path)
    submission = submit(sweep, executor="slurm", root=root, echo=lambda _: None)
    [job_id] = submission.submitted.values()
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    assert "Nice=7" in shown, shown
    [row] = wait_for("setup", root, all_terminal)
    assert row["state"] == "completed", row
    stored = Store(root).run("setup", sweep.runs[0].run_id()).read_config()
    assert stored["provenance"]["environment"]["LOADEDMODULES"] == "cuda/12.4:seqbench-test"
    script = next((root / "setup" / ".submitit").rglob("*_submission.sh")).read_text()
    assert "export LOADEDMODULES=cuda/12.4:seqbench-test" in script and "#SBATCH --nice=7" in script

def test_cluster_script_reports_and_stops_munged_by_its_real_pid():
    """Last in this module: it stops the cluster and starts it again."""
    script = str(Path(__file__).resolve().parents[2] / "slurm" / "cluster.sh")
    munged = subprocess.run(["pgrep", "-u", "munge", "-x", "munged"], capture_output=True, text=True).stdout.split()
    status = subprocess.run([script, "status"], capture_output=True, text=True).stdout
    assert len(munged) == 1 and f"munged running (pid {munged[0]})" in status, status
    subprocess.run([script, "stop"], check=True, capture_output=True)
    try:
        assert subprocess.run(["pgrep", "-u", "munge", "-x", "munged"], capture_output=True).returncode == 1  # none left
        assert "munged stopped" in subprocess.run([script, "status"], capture_output=True, text=True).stdout
    finally:
        subprocess.run([script, "start"], check=True, capture_output=True)
