"""Fault injection: concurrent launches, random kills and preemption signals, crafted files.
Each case is a defect a red-team pass reproduced; each test fails on the code before its fix."""
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import zipfile

import pytest
import torch

from seqbench.analysis.collect import collect
from seqbench.bench.config import parse_run_config
from seqbench.bench.runner import run_in_foreground
from seqbench.bench.store import Store, StoreError
from seqbench.bench.sweep import expand
from seqbench.cli import main
from seqbench.core import remove_stale_temporaries
from seqbench.slurm.status import sweep_status
from tests.helpers import tiny_run_config, write_tiny_sweep

pytestmark = pytest.mark.faults
TRIALS = int(os.environ.get("SEQBENCH_FAULT_TRIALS", 4))
STEPS = 300


def final_weights(run_dir) -> dict:
    return torch.load(run_dir.checkpoint_path, weights_only=True)["model"]


def bitwise_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def launch(root, config_path):
    return subprocess.Popen([sys.executable, "-m", "seqbench.cli", "--root", str(root), "run", str(config_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# --- one trainer per run ------------------------------------------------------------------------
LAUNCH = textwrap.dedent("""
    import json, sys
    from seqbench.bench.sweep import load_sweep
    from seqbench.slurm.executors import submit
    s = submit(load_sweep(sys.argv[1], ["steps=150"]), executor="local", root=sys.argv[2], parallel=2, echo=lambda _: None)
    print(json.dumps({"submitted": list(s.submitted), "busy": list(s.busy), "finished": s.finished, "failed": list(s.failed)}))
""")


def test_concurrent_launches_of_one_sweep_train_each_run_exactly_once(tmp_path):
    sweep_file, root = write_tiny_sweep(tmp_path), tmp_path / "runs"
    launches = [subprocess.Popen([sys.executable, "-c", LAUNCH, str(sweep_file), str(root)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(3)]
    reports = []
    for process in launches:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    run_ids = Store(root).sweep("tiny").run_ids()
    assert len(run_ids) == 4
    for run_id in run_ids:
        trained = sum(run_id in r["submitted"] and run_id not in r["busy"] for r in reports)
        assert trained == 1, (run_id, reports)
        run_dir = Store(root).run("tiny", run_id)
        steps = [row["step"] for row in run_dir.read_metrics() if row["split"] == "train"]
        assert steps == list(range(1, 151)) and run_dir.read_summary()["resumed_from"] == []
    assert all(not r["failed"] for r in reports)


def test_a_second_trainer_leaves_with_a_clear_message_and_status_shows_the_holder(tmp_path):
    config = parse_run_config(tiny_run_config())
    run_dir = Store(tmp_path).run("single", config.run_id())
    with run_dir.lease({"job_id": "4242"}):
        with pytest.raises(Exception, match=f"run {config.run_id()} is being trained by .*job 4242"):
            run_in_foreground(config, root=tmp_path, progress=False)
        Store(tmp_path).sweep("single").write_listing([config.run_id()], {})
        row = sweep_status("single", tmp_path)[0]
        assert "job 4242" in row["lease"]
    assert run_dir.lease_holder() is None  # released
    assert run_in_foreground(config, root=tmp_path, progress=False)["status"] == "completed"


def test_a_dead_trainers_lease_is_taken_over(tmp_path):
    config = parse_run_config(tiny_run_config())
    run_dir = Store(tmp_path).run("single", config.run_id())
    run_dir.path.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir.lease_path.write_text(json.dumps({"host": os.uname().nodename, "pid": int(dead.stdout), "token": "x"}))
    assert run_dir.lease_holder()["stale"]
    assert run_in_foreground(config, root=tmp_path, progress=False)["status"] == "completed"


def test_interrupting_a_local_sweep_stops_its_workers(tmp_path):
    sweep_file, root = write_tiny_sweep(tmp_path), tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "seqbench.cli", "--root", str(root), "sweep", str(sweep_file),
                                "--set", "steps=100000", "--set", "checkpoint_every=20", "--parallel", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=False,
                               # a shell's background job inherits SIGINT ignored, and Python then never raises
                               # KeyboardInterrupt: give the sweep the default, as a terminal's Ctrl-C would find it
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    deadline = time.time() + 120
    while time.time() < deadline:
        holders = [Store(root).run("tiny", r).lease_holder() for r in (Store(root).sweep("tiny").run_ids()
                                                                         if (root / "tiny").exists() else [])]
        if sum(h is not None for h in holders) == 2:
            break
        time.sleep(0.2)
    workers = [h["pid"] for h in holders if h]
    assert len(workers) == 2
    while time.time() < deadline and sum((row["step"] or 0) > 0 for row in sweep_status("tiny", root)) < 2:
        time.sleep(0.2)  # both are training (set-up can take seconds on a loaded machine)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    states = {row["state"] for row in sweep_status("tiny", root) if row["step"]}
    assert states == {"preempted"}  # each worker checkpointed at a step boundary and left



def test_cancel_stops_a_local_sweeps_runs_at_a_step_boundary_and_never_signals_a_reused_pid(tmp_path):
    from seqbench.slurm.status import cancel, local_job_process

    sweep_file, root = write_tiny_sweep(tmp_path), tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "seqbench.cli", "--root", str(root), "sweep", str(sweep_file),
                                "--set", "steps=100000", "--set", "checkpoint_every=20", "--parallel", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and sum((row["step"] or 0) > 0 for row in (
            sweep_status("tiny", root) if (root / "tiny").exists() else [])) < 2:
        time.sleep(0.2)
    workers = [Store(root).run("tiny", row["run_id"]).lease_holder()["pid"] for row in sweep_status("tiny", root) if row["step"]]
    assert len(workers) == 2
    assert local_job_process(root / "tiny", {"job_id": str(os.getpid())}) is None  # a live pid, not this sweep's job
    assert len(cancel("tiny", root)) == 2
    output = process.communicate(timeout=120)[0]
    assert output.count("cancelled at step") == 2 and "failed" not in output and "2 run(s) not started" in output
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    stopped = [row for row in sweep_status("tiny", root) if row["step"]]
    assert {row["state"] for row in stopped} == {"preempted"}  # checkpointed: the next `seqbench sweep` resumes them
    assert all(Store(root).run("tiny", row["run_id"]).checkpoint_path.exists() for row in stopped)
    assert len(sweep_status("tiny", root)) == 4 and len(stopped) == 2  # the launcher started nothing in their place
    assert cancel("tiny", root) == []

# --- preemption and kills at random times: the result never depends on them ------------------------
def interrupted_until_done(tmp_path, sig, seed):
    config = tiny_run_config(steps=STEPS, checkpoint_every=7, eval_every=100, seed=seed)
    path = tmp_path / f"config-{sig}-{seed}.json"
    path.write_text(json.dumps(config))
    root = tmp_path / f"runs-{sig}-{seed}"
    run_dir = Store(root).run("single", parse_run_config(config).run_id())
    rng, interruptions = random.Random(seed), 0
    while not run_dir.is_finished():
        reached = (run_dir.read_status() or {}).get("step", 0)
        process = launch(root, path)
        if interruptions < 2:
            deadline = time.time() + 120
            while (run_dir.read_status() or {}).get("step", 0) <= reached and process.poll() is None:
                assert time.time() < deadline
                time.sleep(0.02)  # training has passed a checkpoint of this launch …
            time.sleep(rng.uniform(0.0, 0.5))  # … and goes on: a random moment inside a step or between
            if (run_dir.read_status() or {}).get("step", 0) < STEPS - 60:  # not so late that it ends first
                process.send_signal(sig)
                interruptions += process.poll() is None
        assert process.wait(timeout=300) in (0, 128 + sig, -sig), process.stderr.read().decode()
    return run_dir, parse_run_config(config)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGUSR2, signal.SIGTERM], ids=["SIGKILL", "SIGUSR2", "SIGTERM"])
def test_random_interruptions_end_with_bitwise_equal_weights(tmp_path, sig):
    resumes, trials_resumed = [], 0
    for seed in range(TRIALS):
        run_dir, config = interrupted_until_done(tmp_path, sig, seed)
        straight = run_in_foreground(config, root=tmp_path / f"straight-{seed}", progress=False)
        assert bitwise_equal(final_weights(run_dir), final_weights(Store(tmp_path / f"straight-{seed}").run("single", config.run_id())))
        steps = [row["step"] for row in run_dir.read_metrics() if row["split"] == "train"]
        assert steps == list(range(1, STEPS + 1))  # none lost, none repeated
        assert run_dir.read_summary()["final_accuracy"] == straight["final_accuracy"]
        resumes += run_dir.read_summary()["resumed_from"]
        trials_resumed += bool(run_dir.read_summary()["resumed_from"])
    print(f"{signal.Signals(sig).name}: {TRIALS} trials, resumed from steps {resumes}")
    assert trials_resumed == TRIALS  # in every trial an interruption landed inside training


def test_a_stop_request_is_honoured_only_at_a_step_boundary(tmp_path, monkeypatch):
    """The signal arrives inside the optimizer step: the checkpoint must still be between steps."""
    config, run_dir = preempted_run(tmp_path, monkeypatch, steps=30, at_step=7)
    assert torch.load(run_dir.checkpoint_path, weights_only=True)["step"] == 7
    assert run_dir.read_status()["state"] == "preempted"
    resumed = run_in_foreground(config, root=tmp_path, progress=False)
    straight = run_in_foreground(config, root=tmp_path / "straight", progress=False)
    assert resumed["resumed_from"] == [7] and resumed["final_accuracy"] == straight["final_accuracy"]
    assert bitwise_equal(final_weights(run_dir), final_weights(Store(tmp_path / "straight").run("single", config.run_id())))


# --- files that lie -----------------------------------------------------------------------------------
class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_checkpoint_is_refused_without_running_anything(tmp_path):
    config = parse_run_config(tiny_run_config())
    run_dir = Store(tmp_path).run("single", config.run_id())
    run_dir.path.mkdir(parents=True)
    marker = tmp_path / "pwned"
    with open(run_dir.checkpoint_path, "wb") as out:
        pickle.dump({"run_id": config.run_id(), "step": 5, "payload": Exploit(marker)}, out)
    with pytest.warns(UserWarning, match="checkpoint unusable"):
        summary = run_in_foreground(config, root=tmp_path, progress=False)
    assert not marker.exists()
    assert summary["status"] == "completed" and summary["resumed_from"] == []
    assert list(run_dir.path.glob("checkpoint.pt.corrupt-*"))


def test_crafted_run_ids_and_sweep_names_never_touch_a_path_outside_the_root(tmp_path, capsys):
    root, victim = tmp_path / "runs", tmp_path / "victim"
    victim.mkdir()
    (victim / "summary.json").write_text("{not json")
    (victim / "status.json").write_text("{not json")
    sweep = root / "s"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"name": "s", "run_ids": ["../../victim", "/etc", "0123456789abcdef"]}))
    (sweep / "jobs.json").write_text(json.dumps({"../../victim": [{"executor": "slurm", "job_id": "1"}]}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [row["run_id"] for row in sweep_status("s", root)] == ["0123456789abcdef"]
        assert list(collect("s", root)[0]["run_id"]) == ["0123456789abcdef"]
    assert sorted(p.name for p in victim.iterdir()) == ["status.json", "summary.json"]  # untouched
    for bad in ("../x", "/tmp/x", "a/../../b", "..", "", "nl\n"):  # `$` matched before a trailing newline
        with pytest.raises(StoreError, match="invalid sweep name"):
            Store(root).sweep(bad)
    with pytest.raises(ValueError, match="'name' must be letters"):
        expand({"name": "nl\n", "base": tiny_run_config()})
    with pytest.raises(SystemExit, match="invalid sweep name '../x'"):
        main(["--root", str(root), "run", "--sweep", "../x", str(tmp_path / "none.json")])
    for bad in ("../../victim", "ABCDEF0123456789", "0123", "0123456789abcdef\n"):
        with pytest.raises(StoreError, match="invalid run id"):
            Store(root).run("s", bad)


def test_every_malformed_file_kind_is_skipped_or_quarantined_and_the_rest_collected(tmp_path):
    root = tmp_path / "runs"
    configs = [parse_run_config(tiny_run_config(seed=seed)) for seed in range(6)]
    for config in configs:
        run_in_foreground(config, root=root, sweep="m", progress=False)
    dirs = [Store(root).run("m", config.run_id()) for config in configs]
    with open(dirs[0].metrics_path, "a") as out:
        out.write("{}\nnull\n[1, 2]\n")
    dirs[1].summary_path.write_text(json.dumps({"run_id": configs[1].run_id(), "status": 5}))
    stored = json.loads(dirs[2].config_path.read_text())
    dirs[2].config_path.write_text(json.dumps({**stored, "provenance": "not a dict"}))
    dirs[3].status_path.write_text("null")
    summary = json.loads(dirs[4].summary_path.read_text())
    dirs[4].summary_path.write_text(json.dumps({**summary, "final_accuracy": "high", "layers": 7}))
    (root / "m" / "jobs.json").write_text("[]")
    (root / "m" / "sweep.json").write_text('{"run_ids": "nope"}')
    with pytest.warns(UserWarning):
        runs, curves = collect("m", root)
    assert len(runs) == 6 and set(runs["run_id"]) == {c.run_id() for c in configs}
    assert runs.set_index("run_id").loc[configs[5].run_id(), "status"] == "completed"
    assert len(curves[curves["run_id"] == configs[0].run_id()]) > 0  # the good lines of a bad file count
    assert list(dirs[1].path.glob("summary.json.corrupt-*")) and list(dirs[2].path.glob("config.json.corrupt-*"))


def preempt_at_step(monkeypatch, step: int):
    """Deliver SIGUSR2 to this process during optimizer step `step` (inside the step)."""
    original, calls = torch.optim.AdamW.step, []

    def step_then_signal(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.05)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_signal)
    return lambda: monkeypatch.setattr(torch.optim.AdamW, "step", original)


def preempted_run(tmp_path, monkeypatch, *, steps: int, at_step: int):
    """A run stopped by SIGUSR2 delivered inside optimizer step `at_step`: (config, its RunDir)."""
    from seqbench.bench import stop

    config = parse_run_config(tiny_run_config(steps=steps, checkpoint_every=1000))
    restore = preempt_at_step(monkeypatch, at_step)
    with pytest.raises(stop.Preempted):
        run_in_foreground(config, root=tmp_path, progress=False)
    restore()
    return config, Store(tmp_path).run("single", config.run_id())


def test_resume_never_depends_on_a_malformed_metrics_line(tmp_path, monkeypatch):
    config, run_dir = preempted_run(tmp_path, monkeypatch, steps=40, at_step=20)
    with open(run_dir.metrics_path, "a") as out:
        out.write('{}\nnull\n{"step": "x", "split": "train"}\n')
    with pytest.warns(UserWarning, match="malformed"):
        summary = run_in_foreground(config, root=tmp_path, progress=False)
    assert summary["status"] == "completed" and summary["steps"] == 40 and summary["resumed_from"] == [20]
    assert [r["step"] for r in run_dir.read_metrics() if r["split"] == "train"] == list(range(1, 41))


def test_early_stop_is_part_of_the_checkpoint(tmp_path):
    config = parse_run_config(tiny_run_config(steps=100, eval_every=5, early_stop={"metric": "accuracy", "threshold": 0.0}))
    run_dir = Store(tmp_path).run("single", config.run_id())
    assert run_in_foreground(config, root=tmp_path, progress=False)["steps"] == 5
    run_dir.summary_path.unlink()  # interrupted after the stop, before the summary was written
    summary = run_in_foreground(config, root=tmp_path, progress=False)
    assert summary["steps"] == 5 and summary["stopped_early"]


def test_nan_from_the_last_update_is_diverged_never_completed(tmp_path, monkeypatch):
    config = parse_run_config(tiny_run_config(steps=3, eval_every=100))
    original, calls = torch.optim.AdamW.step, []

    def last_update_makes_nan(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:  # the loss before this update was finite
            self.param_groups[0]["params"][0].data.fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", last_update_makes_nan)
    summary = run_in_foreground(config, root=tmp_path, progress=False)
    assert summary["status"] == "diverged" and summary["steps"] == 3
    runs, _ = collect("single", tmp_path)
    assert list(runs["status"]) == ["diverged"]
    with pytest.raises(ValueError, match="finite numbers only"):
        Store(tmp_path).run("single", config.run_id()).write_summary({"status": "completed", "final_bpc": float("nan")})


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    stale, fresh = tmp_path / ".summary.json.abc.tmp", tmp_path / ".metrics.jsonl.def.tmp"
    stale.write_text("x")
    fresh.write_text("y")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temporaries(tmp_path) == 1 and not stale.exists() and fresh.exists()


# --- bad values fail at config time --------------------------------------------------------------
@pytest.mark.parametrize("setting,field", [
    ("task.options.seq_len=0", "seq_len"),
    ("task.options.vocab_size=1", "vocab_size"),
    ("model.options.heads=0", "heads"),
    ("optimizer.lr=inf", "optimizer.lr"),
    ("optimizer.betas=[1.5, -3]", "beta"),
    ('early_stop={metric = "bpc"}', "early_stop.metric"),
    ("batch_size=0", "batch_size"),
])
def test_invalid_values_are_rejected_by_a_dry_run_naming_the_field(tmp_path, setting, field):
    result = subprocess.run([sys.executable, "-m", "seqbench.cli", "--root", str(tmp_path), "sweep",
                             str(write_tiny_sweep(tmp_path)), "--dry-run", "--set", setting], capture_output=True, text=True)
    assert result.returncode == 1 and field in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("argv,message", [
    (["--parallel", "-1"], "parallel must be a positive integer"),
    (["--cpus-per-task", "0"], "cpus_per_task must be an integer ≥ 1"),
])
def test_bad_execution_settings_are_rejected(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        main(["--root", str(tmp_path), "sweep", str(write_tiny_sweep(tmp_path)), *argv])


# --- data ------------------------------------------------------------------------------------------
def test_concurrent_enwik8_unpacks_never_lose_or_truncate(tmp_path, monkeypatch):
    from seqbench.tasks import enwik8

    monkeypatch.setattr(enwik8, "ENWIK8_BYTES", 1_000_000)
    payload = bytes(range(256)) * (1_000_000 // 256) + bytes(1_000_000 % 256)
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as archive:
        archive.writestr("enwik8", payload)
    results, errors = [], []

    def unpack():
        try:
            results.append(enwik8._unzip(tmp_path / "enwik8.zip", tmp_path / "enwik8"))
        except Exception as error:  # noqa: BLE001 — collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=unpack) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and (tmp_path / "enwik8").read_bytes() == payload
    assert not list(tmp_path.glob("*.part"))


def test_a_failed_unpack_leaves_no_partial_file(tmp_path, monkeypatch):
    from seqbench.tasks import enwik8

    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as archive:
        archive.writestr("enwik8", b"short")
    with pytest.raises(enwik8.DataError, match="unpacks to 5 bytes"):
        enwik8._unzip(tmp_path / "enwik8.zip", tmp_path / "enwik8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enwik8.zip"]
