"""`seqbench archive` / `restore` (bench/archive.py) on runs a real sweep trained: the finished runs
travel to an empty root, a relaunch there skips them, the archive is byte-identical when packed
twice, and a damaged archive or a different run under one id is refused before anything is written."""
import gzip
import io
import json
import tarfile

import pytest

from seqbench.bench.archive import archive, read_archive, restore
from seqbench.bench.store import Store, StoreError
from seqbench.bench.sweep import expand
from seqbench.slurm.executors import submit
from tests.helpers import tiny_run_config


def trained_sweep(root, steps=(20, 30)):
    base = tiny_run_config()
    spec = {"name": "packed", "base": base, "grid": {"steps": list(steps)}}
    submit(expand(spec), executor="debug", root=root, echo=lambda line: None)
    return spec


def test_finished_runs_travel_and_a_relaunch_skips_them(tmp_path):
    spec = trained_sweep(tmp_path / "here")
    here = Store(tmp_path / "here").sweep("packed")
    unfinished = here.run("0" * 16)
    unfinished.write_status("preempted", step=3)
    unfinished.write_checkpoint(b"state")
    manifest = archive(["packed"], tmp_path / "runs.tar.gz", tmp_path / "here")
    assert len(manifest["sweeps"]["packed"]) == 2 and "0" * 16 not in manifest["sweeps"]["packed"]
    assert not any(name.endswith("checkpoint.pt") for name in manifest["files"])

    assert restore(tmp_path / "runs.tar.gz", tmp_path / "there") == {"packed": 2}
    there = Store(tmp_path / "there").sweep("packed")
    for run_id in manifest["sweeps"]["packed"]:
        assert there.run(run_id).is_finished()
        assert there.run(run_id).read_metrics() == here.run(run_id).read_metrics()
    assert there.commands() == here.commands()
    lines = []
    submit(expand(spec), executor="debug", root=tmp_path / "there", echo=lines.append)
    assert any("0 to run" in line for line in lines), lines
    assert restore(tmp_path / "runs.tar.gz", tmp_path / "there") == {"packed": 0}  # again: identical, nothing added

    archive(["packed"], tmp_path / "again.tar.gz", tmp_path / "here")
    assert (tmp_path / "again.tar.gz").read_bytes() == (tmp_path / "runs.tar.gz").read_bytes()


def test_a_different_run_under_one_id_is_refused_and_nothing_is_written(tmp_path):
    trained_sweep(tmp_path / "a")
    manifest = archive(["packed"], tmp_path / "a.tar.gz", tmp_path / "a")
    run_id = manifest["sweeps"]["packed"][0]
    other = Store(tmp_path / "b").run("packed", run_id)
    other.write_status("running", step=4)
    with pytest.raises(StoreError, match=f"packed/{run_id} \\(running here\\)"):
        restore(tmp_path / "a.tar.gz", tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b" / "packed").iterdir()) == [run_id]


def test_an_edited_archive_or_a_stray_member_fails_the_whole_restore(tmp_path):
    trained_sweep(tmp_path / "a", steps=(20,))
    archive(["packed"], tmp_path / "a.tar.gz", tmp_path / "a")
    manifest, contents = read_archive(tmp_path / "a.tar.gz")

    def rewrite(path, members):
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb") as compressed, tarfile.open(fileobj=compressed, mode="w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        path.write_bytes(buffer.getvalue())

    summary = next(name for name in contents if name.endswith("summary.json"))
    edited = {**contents, summary: contents[summary].replace(b"completed", b"diverged")}
    rewrite(tmp_path / "edited.tar.gz", {"manifest.json": json.dumps(manifest).encode(), **edited})
    with pytest.raises(StoreError, match="does not match its sha256"):
        restore(tmp_path / "edited.tar.gz", tmp_path / "b")
    stray = {**contents, "packed/../../etc/passwd": b"x"}
    manifest["files"]["packed/../../etc/passwd"] = "0"
    rewrite(tmp_path / "stray.tar.gz", {"manifest.json": json.dumps(manifest).encode(), **stray})
    with pytest.raises(StoreError, match="is not <sweep>/sweep.json"):
        restore(tmp_path / "stray.tar.gz", tmp_path / "b")
    assert not (tmp_path / "b").exists()
