"""Runs on this machine (bench/runner.py): files written, resuming after a kill, corruption, divergence, early stop, accumulation."""
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
from tests.helpers import tiny_run_config


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
    run_dir = Store(tmp_path).run("single", config.run_id())
    assert run_dir.is_finished()  # a result, not a crash


def strict(text: str):
    """json.loads as strict readers (jq, JavaScript) read: NaN and Infinity are not JSON."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_a_diverged_run_writes_strict_json_and_reads_its_nan_back(tmp_path):
    config = parse_run_config(tiny_run_config(steps=200, optimizer={"lr": 1e9, "clip_grad_norm": None, "schedule": "constant"}))
    run_in_foreground(config, root=tmp_path, progress=False)
    run_dir = Store(tmp_path).run("single", config.run_id())
    summary = strict(run_dir.summary_path.read_text())
    metrics = [strict(line) for line in run_dir.metrics_path.read_text().splitlines()]
    assert summary["status"] == "diverged" and any(row.get("loss", 0) is None for row in metrics)
    runs, curves = collect("single", tmp_path)
    losses = curves[(curves["metric"] == "loss") & (curves["split"] == "train")]["value"]
    assert losses.isna().any() and list(runs["status"]) == ["diverged"]  # null read back as NaN


def test_early_stop(tmp_path):
    config = parse_run_config(tiny_run_config(steps=100, eval_every=5, early_stop={"metric": "accuracy", "threshold": 0.0}))
    summary = run_in_foreground(config, root=tmp_path, progress=False)
    assert summary["stopped_early"] and summary["steps"] == 5
    row = collect("single", tmp_path, save=False)[0].iloc[0]
    assert row["steps"] == 100 and row["summary.steps"] == 5  # the config's budget is kept beside what ran
    with pytest.raises(ValueError, match="early_stop.metric 'bpc' is not reported by task 'mqar'; its metrics: accuracy"):
        parse_run_config(tiny_run_config(early_stop={"metric": "bpc"}))  # at config time, not on the cluster


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


def test_a_corpus_replaced_after_configuration_is_refused_naming_both_hashes(tmp_path):
    """The run's id records the corpus's sha256 when the sweep is configured; a file replaced since —
    even with the same size and modification time, which fools a (path, size, mtime) cache — is
    refused at start (and so at every resume), naming both hashes; with the recorded file back it trains."""
    import hashlib

    from seqbench.tasks.enwik8 import DataError

    corpus = tmp_path / "corpus.txt"
    original = b"The quick brown fox jumps over the lazy dog. " * 400
    corpus.write_bytes(original)
    config = parse_run_config(tiny_run_config(task={"name": "bytes", "options": {"path": str(corpus), "seq_len": 16}}, steps=4))
    stat = corpus.stat()
    replaced = original.replace(b"fox", b"cat")
    corpus.write_bytes(replaced)
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    before, after = hashlib.sha256(original).hexdigest(), hashlib.sha256(replaced).hexdigest()
    with pytest.raises(DataError, match=f"changed since this run was configured: recorded sha256 {before} .* now {after}"):
        run_in_foreground(config, root=tmp_path / "runs", sweep="s", progress=False)
    corpus.write_bytes(original)
    run_in_foreground(config, root=tmp_path / "runs", sweep="s", progress=False)
    assert Store(tmp_path / "runs").run("s", config.run_id()).is_finished()


def test_a_foreground_run_that_dies_is_failed_not_running_and_orphan_temporaries_go(tmp_path):
    """A run whose set-up raises after it started is recorded failed with its error (seqbench status
    never shows a dead run as running); a temporary left by a killed writer in its folder is cleared
    once the next attempt holds the lease, and the committed results' temporaries are git-ignored."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"0123456789" * 300)
    config = parse_run_config(tiny_run_config(task={"name": "bytes", "options": {"path": str(corpus), "seq_len": 16}}, steps=4))
    run_dir = Store(tmp_path / "runs").run("s", config.run_id())
    corpus.write_bytes(b"9876543210" * 300)  # set-up now fails: the corpus is not the configured one
    with pytest.raises(Exception, match="changed since this run was configured"):
        run_in_foreground(config, root=tmp_path / "runs", sweep="s", progress=False)
    assert run_dir.read_status()["state"] == "failed" and "changed since this run was configured" in run_dir.read_status()["error"]
    orphan = run_dir.path / ".checkpoint.pt.abc123.tmp"
    orphan.write_bytes(b"\0" * 4096)
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    corpus.write_bytes(b"0123456789" * 300)
    run_in_foreground(config, root=tmp_path / "runs", sweep="s", progress=False)
    assert run_dir.is_finished() and not orphan.exists()
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/some-sweep/.runs.csv.x1y2.tmp"], cwd=Path(__file__).parents[2])
    assert ignored.returncode == 0
