"""Runs on this machine: config identity, resuming after a kill, corruption, divergence, sweeps."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqbench.analysis.collect import collect
from seqbench.bench.config import parse_run_config
from seqbench.bench.runner import run_in_foreground
from seqbench.bench.store import Store
from seqbench.bench.sweep import expand
from seqbench.slurm.executors import executor_parameters, submit
from seqbench.slurm.status import sweep_status
from tests.helpers import tiny_run_config


# --- config -------------------------------------------------------------------------------------
def test_run_id_is_the_hash_of_the_canonical_config():
    explicit = parse_run_config(tiny_run_config(model={"options": {"heads": 2, "chunk_size": 64}}, seed=0))
    implicit = parse_run_config(tiny_run_config())
    assert explicit.run_id() == implicit.run_id()  # defaults filled in before hashing
    assert parse_run_config(tiny_run_config(threads=2)).run_id() == implicit.run_id()  # execution detail only
    assert parse_run_config(tiny_run_config(seed=1)).run_id() != implicit.run_id()
    assert json.loads(implicit.canonical_json())["task"]["options"]["power"] == 0.01


@pytest.mark.parametrize("change,message", [
    ({"stepz": 3}, "unknown field\\(s\\) 'stepz' in TrainConfig; valid fields: autocast, batch_size"),
    ({"model": {"name": "lstm"}}, "unknown mixer 'lstm'; valid mixers"),
    ({"model": {"options": {"head": 2}}}, "unknown option\\(s\\) 'head' for mixer 'retnet'"),
    ({"model": {"mode": "scan"}}, "unknown mode 'scan' for mixer 'retnet'; valid modes: parallel, recurrent, chunked"),
    ({"optimizer": {"schedule": "linear"}}, "optimizer.schedule: Input should be 'cosine' or 'constant'"),
    ({"task": {"name": "mqar", "options": {"pairs": 2}}}, "unknown option\\(s\\) 'pairs' for task 'mqar'"),
    ({"device": "tpu"}, "device: Input should be 'auto', 'cpu' or 'cuda'"),
])
def test_bad_configs_give_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        parse_run_config(tiny_run_config(**change))


# --- a run and its files ------------------------------------------------------------------------
def test_run_writes_config_metrics_summary_and_provenance(tmp_path):
    config = parse_run_config(tiny_run_config())
    summary = run_in_foreground(config, root=tmp_path, progress=False)
    run_dir = Store(tmp_path).run("single", config.run_id())
    stored = run_dir.read_config()
    assert stored["config"]["model"]["name"] == "retnet"
    for key in ("commit", "dirty", "packages", "device_name", "host", "slurm_job_id", "parameters", "state_size", "layers"):
        assert key in stored["provenance"]
    assert stored["provenance"]["layers"] == [{"mixer": "retnet", "mode": "chunked", "backend": "torch"}]
    assert summary["status"] == "completed" and summary["steps"] == 20
    assert 0 <= summary["final_accuracy"] <= 1 and summary["peak_memory_bytes"] > 0
    rows = run_dir.read_metrics()
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 21))
    assert [r["step"] for r in rows if r["split"] == "validation"] == [10, 20]
    assert run_dir.read_status()["state"] == "completed"
    assert not list(tmp_path.rglob("*.tmp"))  # every write was renamed into place


def _launch(root, config_path):
    return subprocess.Popen([sys.executable, "-m", "seqbench.cli", "--root", str(root), "run", str(config_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=os.getcwd())


def _train_losses(run_dir):
    return [r["loss"] for r in run_dir.read_metrics() if r["split"] == "train"]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    config = tiny_run_config(steps=1500, checkpoint_every=20, eval_every=500)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    run_dir = Store(tmp_path / "runs").run("single", parse_run_config(config).run_id())
    process = _launch(tmp_path / "runs", config_path)
    deadline = time.time() + 120
    while time.time() < deadline and len(_train_losses(run_dir)) < 60:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not run_dir.summary_path.exists()
    checkpointed = torch.load(run_dir.checkpoint_path, weights_only=True)["step"]
    assert 0 < checkpointed < 1500
    status = run_dir.read_status()  # progress as of the last checkpoint (or the one before, if killed between)
    assert status["state"] == "running" and status["step"] in (checkpointed, checkpointed - 20)

    relaunched = _launch(tmp_path / "runs", config_path)
    assert relaunched.wait(timeout=300) == 0, relaunched.stderr.read().decode()
    summary = run_dir.read_summary()
    assert summary["status"] == "completed" and summary["steps"] == 1500
    assert summary["resumed_from"] == [checkpointed]
    steps = [r["step"] for r in run_dir.read_metrics() if r["split"] == "train"]
    assert steps == list(range(1, 1501))  # no step lost, none repeated

    # the resumed run retraces exactly what an uninterrupted one computes
    uninterrupted = run_in_foreground(parse_run_config(config), root=tmp_path / "straight", progress=False)
    straight = Store(tmp_path / "straight").run("single", parse_run_config(config).run_id())
    assert torch.allclose(torch.tensor(_train_losses(run_dir)), torch.tensor(_train_losses(straight)), atol=1e-5)
    assert summary["final_accuracy"] == pytest.approx(uninterrupted["final_accuracy"])


def test_corrupted_or_half_written_files_are_detected_and_the_run_redone(tmp_path):
    config = parse_run_config(tiny_run_config())
    run_dir = Store(tmp_path).run("single", config.run_id())
    run_in_foreground(config, root=tmp_path, progress=False)
    text = run_dir.summary_path.read_text()
    run_dir.summary_path.write_text(text[: len(text) // 2])  # half a file
    assert not run_dir.is_finished()
    assert list(run_dir.path.glob("summary.json.corrupt-*"))  # kept, never deleted
    run_dir.checkpoint_path.write_bytes(b"not a checkpoint")
    summary = run_in_foreground(config, root=tmp_path, progress=False)
    assert summary["status"] == "completed" and summary["resumed_from"] == []  # started again from step 0
    assert list(run_dir.path.glob("checkpoint.pt.corrupt-*"))

    other = dict(json.loads(run_dir.summary_path.read_text()), run_id="0" * 16)
    run_dir.summary_path.write_text(json.dumps(other))  # a summary of another run
    assert not run_dir.is_finished()

    run_dir.metrics_path.write_text('{"step": 1, "split": "train", "loss": 2.0}\n{"step": 2, "spl')
    with pytest.warns(UserWarning, match="skipped malformed line"):
        assert run_dir.read_metrics() == [{"step": 1, "split": "train", "loss": 2.0}]  # the torn line only


def test_a_diverging_run_ends_with_status_diverged(tmp_path):
    config = parse_run_config(tiny_run_config(steps=200, optimizer={"lr": 1e9, "clip_grad_norm": None, "schedule": "constant"}))
    summary = run_in_foreground(config, root=tmp_path, progress=False)
    assert summary["status"] == "diverged" and summary["steps"] < 200
    assert Store(tmp_path).run("single", config.run_id()).is_finished()  # a result, not a crash


def test_early_stop(tmp_path):
    config = parse_run_config(tiny_run_config(steps=100, eval_every=5, early_stop={"metric": "accuracy", "threshold": 0.0}))
    summary = run_in_foreground(config, root=tmp_path, progress=False)
    assert summary["stopped_early"] and summary["steps"] == 5
    row = collect("single", tmp_path, save=False)[0].iloc[0]
    assert row["steps"] == 100 and row["summary.steps"] == 5  # the config's budget is kept beside what ran
    with pytest.raises(ValueError, match="early_stop.metric 'bpc' is not reported by task 'mqar'; its metrics: accuracy"):
        parse_run_config(tiny_run_config(early_stop={"metric": "bpc"}))  # at config time, not on the cluster


# --- sweeps -------------------------------------------------------------------------------------
def sweep_spec(**changes):
    spec = {"name": "t", "seeds": [0, 1], "base": tiny_run_config(),
            "grid": {"model.name": ["retnet", "linear_attention"]}}
    spec.update(changes)
    return spec


def test_sweep_expands_grid_zip_and_seeds():
    sweep = expand(sweep_spec(zip={"model.d_model": [16, 32], "optimizer.lr": [1e-3, 3e-3]}))
    assert len(sweep.runs) == 2 * 2 * 2
    assert {(r.model.name, r.model.d_model, r.optimizer.lr, r.seed) for r in sweep.runs} == {
        (m, d, lr, s) for m in ("retnet", "linear_attention") for d, lr in ((16, 1e-3), (32, 3e-3)) for s in (0, 1)}


@pytest.mark.parametrize("change,message", [
    ({"nam": "x"}, "unknown key\\(s\\) 'nam'; valid keys: name, seeds, base, grid, zip, executor"),
    ({"name": "a b"}, "'name' must be letters"),
    ({"seeds": []}, "'seeds' must be a non-empty list"),
    ({"zip": {"model.d_model": [16, 32], "seed": [1]}}, "\\[zip\\] lists must have one length"),
    ({"zip": {"model.name": ["retnet"]}}, "appears in both \\[grid\\] and \\[zip\\]"),
    ({"grid": {"model.name": ["retnet", "rnn"]}}, "(?s)the run with model.name='rnn', seed=0 is invalid: .*unknown mixer 'rnn'"),
])
def test_bad_sweeps(change, message):
    with pytest.raises(ValueError, match=message):
        expand(sweep_spec(**change))


def test_unknown_executor_parameters_fail_loudly():
    with pytest.raises(ValueError, match="unknown executor parameter\\(s\\) 'gpus'; valid: account, array_parallelism"):
        executor_parameters({"gpus": 1}, {})
    with pytest.raises(ValueError, match="unknown executor 'k8s'; valid executors: local, slurm, debug"):
        submit(expand(sweep_spec()), executor="k8s")


@pytest.mark.slow
def test_local_sweep_isolates_a_failing_run_collects_and_skips_what_finished(tmp_path):
    missing = str(tmp_path / "no-such-corpus.txt")
    bytes_run = parse_run_config(tiny_run_config(task={"name": "bytes", "options": {"path": missing, "seq_len": 32}}))
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


def test_collect_works_on_a_partial_sweep(tmp_path):
    sweep = expand(sweep_spec())
    submit(type(sweep)(name="t", runs=sweep.runs[:1]), executor="debug", root=tmp_path, echo=lambda _: None)
    Store(tmp_path).sweep("t").write_listing([run.run_id() for run in sweep.runs], {})  # all known, one finished
    runs_table, _ = collect("t", tmp_path)
    assert sorted(runs_table["status"]) == ["completed", "pending", "pending", "pending"]
    with pytest.raises(ValueError, match="no sweep 'u' under .*; sweeps there: t"):
        collect("u", tmp_path)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "sweeps").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_sweep_file_expands_into_valid_runs(path):
    from seqbench.bench.sweep import load_sweep

    sweep = load_sweep(path)
    assert sweep.runs and len({run.run_id() for run in sweep.runs}) == len(sweep.runs)
    executor_parameters(sweep.executor, {})


def test_sweep_axes_ignore_other_mixers_option_defaults():
    import pandas as pd

    from seqbench.analysis.collect import varying_columns

    runs = pd.DataFrame({
        "model.name": ["gateloop", "gateloop", "retnet", "softmax_attention"],
        "model.options.backend": ["auto", "auto", None, "sdpa"],  # each mixer's own default: not an axis
        "model.options.heads": [8, 16, 4, 4],  # varies within gateloop: an axis
        "optimizer.lr": [1e-3, 1e-3, 1e-3, 1e-3],
    })
    assert varying_columns(runs) == ["model.name", "model.options.heads"]


def test_options_added_later_leave_every_earlier_run_id_unchanged():
    """Committed results name run ids; a field added since (at its default) must not change them."""
    import pandas as pd

    from seqbench.bench.sweep import load_sweep

    root = Path(__file__).parents[2]
    for name in ("demo-mqar", "mqar-gateloop-recall"):
        sweep_file = root / "sweeps" / f"{'demo' if name == 'demo-mqar' else name}.toml"
        committed = set(pd.read_csv(root / "results" / name / "runs.csv")["run_id"])
        assert {run.run_id() for run in load_sweep(sweep_file).runs} == committed
    gateloop = tiny_run_config(model={"name": "gateloop", "options": {}})
    body = json.loads(parse_run_config(gateloop).canonical_json())
    assert "grad_accumulation" not in body and "norm" not in body["model"]
    assert "state_operator" not in body["model"]["options"] and "chunk_size" in body["model"]["options"]
    changed = [tiny_run_config(grad_accumulation=2), tiny_run_config(model={"norm": "post"}),
               tiny_run_config(model={"name": "gateloop", "options": {"state_operator": "real_part"}})]
    assert len({parse_run_config(c).run_id() for c in [tiny_run_config(), *changed]}) == 4


def test_gradient_accumulation_averages_the_micro_batch_gradients(tmp_path):
    import torch.nn.functional as F

    from seqbench.bench.runner import Trainer, batch_seed
    from seqbench.tasks import IGNORE

    config = parse_run_config(tiny_run_config(grad_accumulation=3, optimizer={"clip_grad_norm": None}, seed=4))
    trainer = Trainer(config, Store(tmp_path).run("accumulate", config.run_id()), progress=False)
    fresh = config.model.build(vocab_size=trainer.task.vocab_size)
    fresh.load_state_dict(trainer.model.state_dict())
    losses = []
    for micro in range(3):  # step 0: micro-batches 0, 1, 2 of the seed's stream
        inputs, targets = trainer.task.get_batch("train", 4, batch_seed(4, micro))
        loss = F.cross_entropy(fresh(inputs).flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        (loss / 3).backward()
        losses.append(loss.item())
    logged = trainer._train_step()
    assert logged == pytest.approx(sum(losses) / 3, rel=1e-6)
    for (name, p), q in zip(trainer.model.named_parameters(), fresh.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-7, rtol=1e-5), name
    assert trainer.metrics[-1]["tokens_per_s"] > 0 and trainer.step == 1
