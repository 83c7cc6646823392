"""Byte corpora and enwik8 (tasks/enwik8.py): splits, evaluation windows, bits per byte, compressed files, bad inputs."""
import math
import zipfile

import numpy as np
import pytest
import torch

from seqbench import tasks
from seqbench.tasks.base import IGNORE
from seqbench.tasks.enwik8 import ENWIK8_BYTES, DataError


# --- bytes and enwik8 ---------------------------------------------------------------------------
@pytest.fixture
def corpus(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8)
    path = tmp_path / "text.bin"
    path.write_bytes(data.tobytes())
    return path, data


def test_bytes_split_boundaries_and_batches(corpus):
    path, data = corpus
    task = tasks.build("bytes", path=str(path), seq_len=16)
    assert task.boundaries == {"train": (0, 900), "validation": (900, 950), "test": (950, 1000)}
    inputs, targets = task.get_batch("validation", 4, seed=0)
    valid = data[900:950]
    for row in range(4):  # each window lies inside the split and targets are inputs shifted by one
        window = inputs[row].numpy().astype(np.uint8)
        start = next(s for s in range(50 - 16) if (valid[s : s + 16] == window).all())
        assert (targets[row].numpy() == valid[start + 1 : start + 17]).all()


@pytest.mark.parametrize("seq_len", [7, 16, 49])
def test_evaluation_windows_score_every_byte_exactly_once(corpus, seq_len):
    path, data = corpus
    task = tasks.build("bytes", path=str(path), seq_len=seq_len)
    scored = []
    for inputs, targets in task.eval_batches("validation", batch_size=3):
        for row in range(inputs.shape[0]):
            mask = targets[row] != IGNORE
            scored.extend(targets[row, mask].tolist())
            both = mask[:-1] & mask[1:]
            assert (targets[row, :-1][both] == inputs[row, 1:][both]).all()  # targets are inputs shifted by one
    assert scored == data[901:950].tolist()  # every byte but the split's first, in order, once


def test_bits_per_byte_equals_a_hand_computation(corpus):
    path, data = corpus
    task = tasks.build("bytes", path=str(path), seq_len=10)
    torch.manual_seed(0)
    embedding = torch.randn(256, 256)  # a bigram "model": logits = row of the current byte
    result = task.evaluate(lambda inputs: embedding[inputs], "test", batch_size=2)
    nats = 0.0
    test = data[950:1000]
    for previous, current in zip(test[:-1], test[1:]):
        nats -= torch.log_softmax(embedding[int(previous)].double(), -1)[int(current)].item()
    assert result["scored_bytes"] == 49
    assert result["bpc"] == pytest.approx(nats / 49 / math.log(2), rel=1e-12)


def test_eval_bytes_limits_the_evaluated_prefix(corpus):
    path, _ = corpus
    task = tasks.build("bytes", path=str(path), seq_len=8, eval_bytes=20)
    assert sum(int((t != IGNORE).sum()) for _, t in task.eval_batches("validation", 4)) == 19


def test_bytes_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        tasks.build("bytes", path=str(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match="is not a regular file"):
        tasks.build("bytes", path=str(tmp_path))
    (tmp_path / "one").write_bytes(b"x")
    with pytest.raises(DataError, match="holds 1 byte"):
        tasks.build("bytes", path=str(tmp_path / "one"))
    (tmp_path / "small").write_bytes(b"abcdefghijklmnopqrstuvwxyz" * 2)
    with pytest.raises(DataError, match="the validation split holds 2 bytes, fewer than seq_len \\+ 1"):
        tasks.build("bytes", path=str(tmp_path / "small"), seq_len=8).get_batch("validation", 1, 0)


@pytest.mark.parametrize("suffix", [".gz", ".dz"])
def test_bytes_reads_gzip_and_dictzip_once_from_the_data_directory(corpus, tmp_path, monkeypatch, suffix):
    import gzip

    path, data = corpus
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / f"text{suffix}").write_bytes(gzip.compress(data.tobytes()))
    monkeypatch.setenv("SEQBENCH_DATA", str(data_dir))
    task = tasks.build("bytes", path=f"text{suffix}", seq_len=16)  # relative: looked up in the data directory
    assert (np.asarray(task.data) == data).all() and task.boundaries["validation"] == (900, 950)
    unpacked = list((data_dir / "unpacked").iterdir())
    assert len(unpacked) == 1 and not list(data_dir.rglob("*.part"))
    tasks.build("bytes", path=f"text{suffix}", seq_len=16)
    assert list((data_dir / "unpacked").iterdir()) == unpacked  # unpacked once
    (data_dir / f"broken{suffix}").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a valid gzip/dictzip file"):
        tasks.build("bytes", path=f"broken{suffix}")
    with pytest.raises(DataError, match="relative paths are looked up in the data directory"):
        tasks.build("bytes", path="absent.dz")


def make_enwik8(directory, *, size=ENWIK8_BYTES):
    """A sparse file of enwik8's exact size with marker bytes around the split boundaries."""
    path = directory / "enwik8"
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, byte in ((0, 1), (89_999_999, 2), (90_000_000, 3), (94_999_999, 4), (95_000_000, 5), (size - 1, 6)):
            if offset < size:
                f.seek(offset)
                f.write(bytes([byte]))
    return path


def test_enwik8_standard_split(tmp_path):
    make_enwik8(tmp_path)
    task = tasks.build("enwik8", data_dir=str(tmp_path), seq_len=64)
    assert task.boundaries == {"train": (0, 90_000_000), "validation": (90_000_000, 95_000_000), "test": (95_000_000, 100_000_000)}
    assert task.split_bytes("train")[-1] == 2 and task.split_bytes("validation")[0] == 3
    assert task.split_bytes("validation")[-1] == 4 and task.split_bytes("test")[0] == 5
    assert task.split_bytes("test")[-1] == 6 and len(task.split_bytes("test")) == 5_000_000
    windows = sum(1 for _ in task.eval_batches("test", batch_size=4096))
    assert windows == math.ceil(math.ceil((5_000_000 - 1) / 64) / 4096)


def test_enwik8_data_dir_from_environment(tmp_path, monkeypatch):
    make_enwik8(tmp_path)
    monkeypatch.setenv("SEQBENCH_DATA", str(tmp_path))
    assert tasks.build("enwik8").path == tmp_path / "enwik8"


def test_enwik8_unpacks_a_zip(tmp_path):
    (tmp_path / "src").mkdir()
    source = make_enwik8(tmp_path / "src")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with zipfile.ZipFile(data_dir / "enwik8.zip", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.write(source, "enwik8")
    task = tasks.build("enwik8", data_dir=str(data_dir))
    assert (data_dir / "enwik8").stat().st_size == ENWIK8_BYTES and task.split_bytes("test")[0] == 5


def test_enwik8_missing_wrong_size_and_corrupt(tmp_path):
    with pytest.raises(DataError, match=rf"enwik8 not found: looked for {tmp_path}/enwik8 and {tmp_path}/enwik8.zip .*download=True"):
        tasks.build("enwik8", data_dir=str(tmp_path))
    (tmp_path / "enwik8.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="is not a valid zip archive"):
        tasks.build("enwik8", data_dir=str(tmp_path))
    assert not (tmp_path / "enwik8").exists() and not (tmp_path / "enwik8.part").exists()
    make_enwik8(tmp_path, size=12_345)
    with pytest.raises(DataError, match="is 12,345 bytes; enwik8 is exactly 100,000,000"):
        tasks.build("enwik8", data_dir=str(tmp_path))


def test_enwik8_zip_without_the_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(DataError, match="not a member named 'enwik8'"):
        tasks.build("enwik8", data_dir=str(tmp_path))


def test_longer_test_windows_give_bits_per_byte_per_position_bucket(tmp_path):
    """Length generalisation on bytes: trained at 16, tested in windows of 64 — bpc/to16, to32, to64
    are the buckets of positions, and they average (by bytes) to the overall bpc."""
    from seqbench.tasks.enwik8 import Bytes

    corpus = tmp_path / "c.txt"
    corpus.write_bytes(bytes(range(256)) * 40)
    task = Bytes(path=str(corpus), seq_len=16, test_seq_len=64)
    assert task.position_edges() == [16, 32, 64]
    assert {inputs.shape[1] for inputs, _ in task.eval_batches("test", 4)} == {64}
    assert {inputs.shape[1] for inputs, _ in task.eval_batches("validation", 4)} == {16}
    torch.manual_seed(0)
    predict = lambda inputs: torch.randn(*inputs.shape, 256) * (1 + torch.arange(inputs.shape[1])[None, :, None] / 16)  # noqa: E731
    metrics = task.evaluate(predict, "test", 8)
    assert set(metrics) == {"bpc", "scored_bytes", "bpc/to16", "bpc/to32", "bpc/to64"}
    assert metrics["bpc/to16"] < metrics["bpc/to32"] < metrics["bpc/to64"]  # worse predictions later in the window
    assert set(task.evaluate(predict, "validation", 8)) == {"bpc", "scored_bytes", "bpc/to16"}
    assert set(Bytes(path=str(corpus), seq_len=16).evaluate(predict, "test", 8)) == {"bpc", "scored_bytes"}
    with pytest.raises(ValueError, match="test_seq_len must be an integer ≥ seq_len = 16"):
        Bytes(path=str(corpus), seq_len=16, test_seq_len=8)
