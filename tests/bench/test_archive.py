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

    summary = next(name for name in contents if name.endswith("summary.json"))
    edited = {**contents, summary: contents[summary].replace(b"completed", b"diverged")}
    _pack(tmp_path / "edited.tar.gz", {"manifest.json": json.dumps(manifest).encode(), **edited})
    with pytest.raises(StoreError, match="does not match its sha256"):
        restore(tmp_path / "edited.tar.gz", tmp_path / "b")
    stray = {**contents, "packed/../../etc/passwd": b"x"}
    manifest["files"]["packed/../../etc/passwd"] = "0"
    _pack(tmp_path / "stray.tar.gz", {"manifest.json": json.dumps(manifest).encode(), **stray})
    with pytest.raises(StoreError, match="is not <sweep>/sweep.json"):
        restore(tmp_path / "stray.tar.gz", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def _pack(path, members):
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as compressed, tarfile.open(fileobj=compressed, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())


def test_a_damaged_or_foreign_archive_is_one_error_naming_what_is_wrong(tmp_path, monkeypatch):
    """Truncated, bit-flipped, empty, text, gzip-but-not-tar, a manifest that is a list or not JSON, a
    run file that is not UTF-8, a member larger than any run file: each a StoreError naming the archive
    (the command line prints it as one line), nothing written, no member decompressed past its header."""
    from seqbench.bench import archive as archive_module

    trained_sweep(tmp_path / "a", steps=(20,))
    good = tmp_path / "a.tar.gz"
    archive(["packed"], good, tmp_path / "a")
    manifest, contents = read_archive(good)
    data = good.read_bytes()
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    summary = next(name for name in contents if name.endswith("summary.json"))
    bad_utf8 = {**contents, summary: contents[summary].replace(b'"', b'\xff"', 1)}
    cases = {
        "truncated.tar.gz": (data[: len(data) // 2], "not a readable tar.gz archive"),
        "flipped.tar.gz": (bytes(flipped), "not a readable tar.gz archive|does not match its sha256|members and manifest differ"),
        "empty.tar.gz": (b"", "not a readable tar.gz archive|no manifest.json"),
        "text.tar.gz": (b"just some text\n", "not a readable tar.gz archive"),
        "gzip-not-tar.tar.gz": (gzip.compress(b"plain bytes, not a tar"), "not a readable tar.gz archive"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(StoreError, match=message):
            restore(tmp_path / name, tmp_path / "b")
    _pack(tmp_path / "list.tar.gz", {"manifest.json": b"[1, 2]", **contents})
    with pytest.raises(StoreError, match="its manifest.json is not an object"):
        restore(tmp_path / "list.tar.gz", tmp_path / "b")
    _pack(tmp_path / "notjson.tar.gz", {"manifest.json": b"{files: nope", **contents})
    with pytest.raises(StoreError, match="its manifest.json is not JSON text"):
        restore(tmp_path / "notjson.tar.gz", tmp_path / "b")
    bad_manifest = {**manifest, "files": {**manifest["files"], summary: archive_module._sha256(bad_utf8[summary])}}
    _pack(tmp_path / "utf8.tar.gz", {"manifest.json": json.dumps(bad_manifest).encode(), **bad_utf8})
    with pytest.raises(StoreError, match=f"{summary} is not valid UTF-8 JSON"):
        restore(tmp_path / "utf8.tar.gz", tmp_path / "b")
    monkeypatch.setattr(archive_module, "MAX_MEMBER_BYTES", 10)
    with pytest.raises(StoreError, match="more than any run file"):
        restore(good, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_restore_keeps_the_roots_own_executor_settings(tmp_path):
    trained_sweep(tmp_path / "a", steps=(20,))
    archive(["packed"], tmp_path / "a.tar.gz", tmp_path / "a")
    target = Store(tmp_path / "b").sweep("packed")
    target.path.mkdir(parents=True)
    target.write_listing([], {"partition": "mine"}, "seqbench sweep here.toml")
    restore(tmp_path / "a.tar.gz", tmp_path / "b")
    listing = target.read_listing()
    assert listing["executor"] == {"partition": "mine"} and "seqbench sweep here.toml" in listing["commands"]
