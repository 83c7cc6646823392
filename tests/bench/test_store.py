"""The store's defensive reads (bench/store.py): a bad file is moved aside once, even with several
readers racing on it, and a store that cannot be written (a read-only copy of the results) is read
all the same."""
import contextlib
import json
import os
import subprocess
import threading
import warnings

import pytest

from seqbench.analysis.collect import collect
from seqbench.bench.config import parse_run_config
from seqbench.bench.runner import run_in_foreground
from seqbench.bench.store import Store
from seqbench.slurm.status import sweep_status
from tests.helpers import tiny_run_config

pytestmark = pytest.mark.faults


def test_readers_racing_on_one_corrupt_file_see_it_as_absent_and_none_raises(tmp_path):
    run_dir = Store(tmp_path).run("s", "0123456789abcdef")
    run_dir.path.mkdir(parents=True)
    errors, results = [], []
    for _ in range(10):
        run_dir.summary_path.write_text("{torn")
        barrier = threading.Barrier(4)

        def read():
            barrier.wait()
            try:
                results.append(run_dir.read_summary())
            except Exception as error:  # noqa: BLE001 — what the test counts
                errors.append(repr(error))

        readers = [threading.Thread(target=read) for _ in range(4)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join()
    assert errors == [] and results == [None] * 40
    assert 1 <= len(list(run_dir.path.glob("summary.json.corrupt-*"))) <= 10  # each round's file kept once


@contextlib.contextmanager
def read_only(folder):
    """`folder` bind-mounted read-only over itself (root only: a real read-only file system)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only file system needs root (CI runs as root)")
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_corrupt_file_in_a_read_only_store_is_reported_and_the_rest_is_read(tmp_path):
    configs = [parse_run_config(tiny_run_config(steps=2, seed=seed)) for seed in range(2)]
    for config in configs:
        run_in_foreground(config, root=tmp_path, sweep="ro", progress=False)
    bad = Store(tmp_path).run("ro", configs[0].run_id())
    bad.summary_path.write_text(json.dumps({"run_id": bad.run_id, "status": "exploded"}))
    with read_only(tmp_path / "ro"):
        with pytest.warns(UserWarning, match="could not move it aside"):
            statuses = {row["run_id"]: row["state"] for row in sweep_status("ro", tmp_path)}
        assert statuses[configs[1].run_id()] == "completed"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs, _ = collect("ro", tmp_path)
        assert any("could not save the collected tables" in str(w.message) for w in caught)
        assert set(runs["run_id"]) == {c.run_id() for c in configs}
        assert bad.summary_path.exists()  # left where it was: nothing could be moved


RECORD_JOBS = """
import sys
from seqbench.bench.store import Store
sweep = Store(sys.argv[1]).sweep("shared")
for n in range(25):
    sweep.record_jobs("local", {f"{int(sys.argv[2]):04x}{n:012x}": f"{sys.argv[2]}-{n}"})
"""


def test_launchers_recording_jobs_at_once_keep_every_record(tmp_path):
    """Four processes (two `findings run` sharing a store folder, and more) each record 25 jobs at
    once: every record is read back, none overwritten by another's write."""
    launchers = [subprocess.Popen([os.sys.executable, "-c", RECORD_JOBS, str(tmp_path), str(k)]) for k in range(4)]
    assert [p.wait(timeout=120) for p in launchers] == [0] * 4
    jobs = Store(tmp_path).sweep("shared").read_jobs()
    assert len(jobs) == 100 and {entry["job_id"] for entries in jobs.values() for entry in entries} == \
        {f"{k}-{n}" for k in range(4) for n in range(25)}
    legacy = Store(tmp_path).sweep("old")
    legacy.path.mkdir()
    legacy.jobs_path.write_text(json.dumps({"00000000000000aa": [{"executor": "slurm", "job_id": "7", "submitted": 1.0}]}))
    legacy.record_jobs("slurm", {"00000000000000aa": "8"})
    assert [entry["job_id"] for entry in legacy.read_jobs()["00000000000000aa"]] == ["7", "8"]  # a store of an earlier version


def test_a_run_file_with_a_byte_that_is_not_utf8_is_quarantined_and_named_not_a_crash(tmp_path):
    """One non-UTF-8 byte in status.json, summary.json or sweep.json: the file is moved aside with a
    warning naming it (like invalid JSON), and status, collect and the listing read on."""
    sweep = Store(tmp_path).sweep("s")
    run = sweep.run("0123456789abcdef")
    run.write_status({"state": "running"})
    run.write_summary({"status": "completed", "steps": 3})
    sweep.write_listing(["0123456789abcdef"], {}, "seqbench sweep s.toml")
    for path in (run.status_path, run.summary_path, sweep.listing_path):
        path.write_bytes(path.read_bytes().replace(b'"', b'\xff"', 1))
    with pytest.warns(UserWarning, match=r"(status|summary)\.json: not UTF-8 text"):
        assert run.read_status() is None and run.read_summary() is None
    with pytest.warns(UserWarning, match=r"sweep\.json: not UTF-8 text"):
        sweep.run_ids()
    assert sorted(p.name.split(".corrupt-")[0] for p in run.path.glob("*.corrupt-*")) == ["status.json", "summary.json"]
    runs, _ = collect("s", tmp_path, save=False)
    assert list(runs["status"]) == ["pending"]


def test_a_foreground_run_killed_without_a_word_is_preempted_not_running(tmp_path):
    """SIGKILL (or the OOM killer) leaves status.json at running: status and collect must not say so."""
    import signal
    import sys
    import time

    config = tmp_path / "run.json"
    config.write_text(json.dumps(tiny_run_config(steps=100_000, checkpoint_every=2)))
    command = [sys.executable, "-m", "seqbench.cli", "--root", str(tmp_path / "runs"), "run", str(config)]
    trainer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep = Store(tmp_path / "runs").sweep("single")
    try:
        deadline = time.monotonic() + 120
        while not (sweep.exists() and any((sweep.run(run_id).read_status() or {}).get("step", 0) >= 4
                                          for run_id in sweep.run_ids())):
            assert time.monotonic() < deadline and trainer.poll() is None, "the run never reached step 4"
            time.sleep(0.2)
        [row] = sweep_status("single", tmp_path / "runs")
        assert row["state"] == "running" and row["lease"]  # alive: running, held by its trainer
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
    [row] = sweep_status("single", tmp_path / "runs")
    assert row["state"] == "preempted" and "died without a word" in row["error"] and str(trainer.pid) in row["error"]
    runs, _ = collect("single", tmp_path / "runs")
    assert list(runs["status"]) == ["preempted"]
