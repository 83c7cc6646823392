import math
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqbench import tasks
from seqbench.tasks.base import IGNORE
from seqbench.tasks.enwik8 import ENWIK8_BYTES, DataError


# --- registry -----------------------------------------------------------------------------------
def test_registry_errors():
    with pytest.raises(ValueError, match="unknown task 'mqr'; valid tasks: bytes, enwik8, memory_horizon, mqar"):
        tasks.build("mqr")
    with pytest.raises(ValueError, match="unknown option\\(s\\) 'pairs' for task 'mqar'; valid options: .*num_pairs"):
        tasks.build("mqar", pairs=4)
    with pytest.raises(ValueError, match="task 'bytes' needs option\\(s\\): path"):
        tasks.build("bytes")
    with pytest.raises(ValueError, match="unknown split 'val'; valid splits: train, validation, test"):
        tasks.build("mqar").get_batch("val", 2, 0)


@pytest.mark.parametrize("name,options", [("mqar", {}), ("memory_horizon", {})])
def test_batches_are_deterministic_and_splits_differ(name, options):
    task = tasks.build(name, **options)
    x1, y1 = task.get_batch("train", 8, seed=3)
    x2, y2 = task.get_batch("train", 8, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == y1.shape == (8, task.seq_len) and x1.dtype == torch.long
    assert not torch.equal(task.get_batch("train", 8, seed=4)[0], x1)
    assert not torch.equal(task.get_batch("validation", 8, seed=3)[0], x1)


# --- MQAR ---------------------------------------------------------------------------------------
def test_mqar_generator_follows_the_definition():
    task = tasks.build("mqar", vocab_size=8192, seq_len=128, num_pairs=8)
    inputs, targets = task.get_batch("train", 256, seed=0)
    half = 4096
    keys, values = inputs[:, 0:16:2], inputs[:, 1:16:2]
    assert keys.min() >= 1 and keys.max() <= half - 1
    assert values.min() >= half and values.max() <= 8191
    assert all(len(set(row.tolist())) == 8 for row in keys) and all(len(set(row.tolist())) == 8 for row in values)
    assert ((targets != IGNORE).sum(1) == 8).all()
    for row in range(256):
        pairs = dict(zip(keys[row].tolist(), values[row].tolist()))
        scored = (targets[row] != IGNORE).nonzero().flatten()
        assert all(position >= 16 and position % 2 == 0 for position in scored.tolist())
        queried = inputs[row, scored].tolist()
        assert sorted(queried) == sorted(pairs)  # every key is queried exactly once
        assert targets[row, scored].tolist() == [pairs[k] for k in queried]
        others = torch.ones(128, dtype=torch.bool)
        others[:16], others[scored] = False, False
        assert (inputs[row, others] == 0).all()


def test_mqar_random_non_queries_keeps_the_pairs_and_fills_the_rest_uniformly():
    """Zoology's generator default: same keys, values, slots and targets; the zeros become uniform tokens."""
    zeros = tasks.build("mqar", vocab_size=256, seq_len=128, num_pairs=8)
    noisy = tasks.build("mqar", vocab_size=256, seq_len=128, num_pairs=8, random_non_queries=True)
    (plain, targets), (filled, noisy_targets) = zeros.get_batch("train", 512, 0), noisy.get_batch("train", 512, 0)
    assert torch.equal(targets, noisy_targets)
    kept = plain != 0
    assert torch.equal(filled[kept], plain[kept])
    fill = filled[~kept].float()
    assert abs(fill.mean().item() - 127.5) < 2 and abs((fill < 128).float().mean().item() - 0.5) < 0.01  # half in the key range
    assert (filled[~kept] == 0).float().mean() < 0.01


def test_mqar_query_slots_follow_the_power_law():
    """One pair per sequence: the slot g is drawn with P(g) ∝ (g+1)^(a−1). Pearson χ² at the 0.1% level."""
    power, seq_len = 0.3, 34
    task = tasks.build("mqar", vocab_size=256, seq_len=seq_len, num_pairs=1, power=power)
    _, targets = task.get_batch("train", 20_000, seed=1)
    slots = ((targets != IGNORE).nonzero()[:, 1] - 2) // 2
    count = (seq_len - 2) // 2
    observed = torch.bincount(slots, minlength=count).double()
    expected_p = (torch.arange(count, dtype=torch.float64) + 1) ** (power - 1)
    expected = expected_p / expected_p.sum() * len(slots)
    chi2 = ((observed - expected) ** 2 / expected).sum().item()
    df, z = count - 1, 3.090  # Wilson–Hilferty approximation of the χ² 99.9% quantile
    critical = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    assert chi2 < critical
    assert observed[0] > observed[-1] * 2  # queries cluster right after the prefix


def test_mqar_test_set_has_one_slice_per_configuration():
    task = tasks.build("mqar", vocab_size=512, seq_len=64, num_pairs=4, test_examples=10,
                       test_configs=[[64, 4], [128, 8]])
    batches = list(task.eval_batches("test", batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 64), (4, 64), (2, 64), (4, 128), (4, 128), (2, 128)]
    perfect = task.evaluation()
    for inputs, targets in batches:  # a predictor that knows the answer, except it misses every L128 query
        logits = F.one_hot(targets.clamp_min(0), 512).float()
        if inputs.shape[1] == 128:
            logits = -logits
        perfect.update(logits, inputs, targets)
    assert perfect.result() == {"accuracy": 0.5, "accuracy/L64_N4": 1.0, "accuracy/L128_N8": 0.0}


@pytest.mark.parametrize("options,message", [
    ({"seq_len": 63}, "seq_len must be an even integer"),
    ({"vocab_size": 64, "seq_len": 64}, "needs vocab_size > seq_len"),
    ({"seq_len": 64, "num_pairs": 20}, "20 pairs need 20 query slots but seq_len=64 leaves 12; use seq_len ≥ 80"),
    ({"power": 0.0}, "power must lie in"),
])
def test_mqar_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        tasks.build("mqar", **options)


# --- memory horizon -----------------------------------------------------------------------------
def test_memory_horizon_hand_computed_example():
    reset = 5
    inputs = torch.tensor([[reset, 2, 3, 4, reset, 4, 4, reset, 1, 3]])
    task = tasks.build("memory_horizon", seq_len=10, num_symbols=4, max_horizon=4)
    assert task.horizon(inputs).tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1, 2]]
    # recall_first: the segment's first symbol
    assert _targets_from_tokens(inputs, "recall_first", 4).tolist() == [[IGNORE, 2, 2, 2, IGNORE, 4, 4, IGNORE, 1, 1]]
    # sum_mod: 0-based symbols 1,2,3 | 3,3 | 0,2 → running sums mod 4: 1,3,2 | 3,2 | 0,2 → as symbols +1
    assert _targets_from_tokens(inputs, "sum_mod", 4).tolist() == [[IGNORE, 2, 4, 3, IGNORE, 4, 3, IGNORE, 1, 3]]


@pytest.mark.parametrize("rule", ["recall_first", "sum_mod"])
def test_memory_horizon_generator_applies_the_rule(rule):
    task = tasks.build("memory_horizon", seq_len=96, num_symbols=6, max_horizon=12, rule=rule)
    inputs, targets = task.get_batch("train", 64, seed=0)
    assert torch.equal(targets, _targets_from_tokens(inputs, rule, 6))
    horizon = task.horizon(inputs)
    assert horizon.max() <= 12 and (targets[horizon == 0] == IGNORE).all() and (targets[horizon > 0] != IGNORE).all()


@pytest.mark.parametrize("rule", ["recall_first", "sum_mod"])
def test_memory_horizon_targets_ignore_everything_before_the_last_reset(rule):
    """Scramble every symbol before some RESET: the generator's targets after it must not move."""
    task = tasks.build("memory_horizon", seq_len=128, num_symbols=8, max_horizon=20, rule=rule)
    inputs, targets = task.get_batch("train", 16, seed=1)
    generator = torch.Generator().manual_seed(2)
    for row in range(16):
        resets = (inputs[row] == 9).nonzero().flatten().tolist()
        cut = resets[len(resets) // 2]
        changed = inputs[row : row + 1].clone()
        scrambled = torch.randint(1, 9, (cut,), generator=generator)
        changed[0, :cut] = torch.where(changed[0, :cut] == 9, 9, scrambled)
        assert torch.equal(_targets_from_tokens(changed, rule, 8)[0, cut:], targets[row, cut:])


def _targets_from_tokens(inputs, rule, num_symbols):
    out = torch.full_like(inputs, IGNORE)
    for row in range(inputs.shape[0]):
        first, running = None, 0
        for t, token in enumerate(inputs[row].tolist()):
            if token == num_symbols + 1:
                first, running = None, 0
                continue
            first = token if first is None else first
            running = (running + token - 1) % num_symbols
            out[row, t] = first if rule == "recall_first" else running + 1
    return out


def test_memory_horizon_buckets_and_bad_options():
    task = tasks.build("memory_horizon", seq_len=64, max_horizon=10)
    assert task.bucket_names() == [("h1-1", 1, 1), ("h2-3", 2, 3), ("h4-7", 4, 7), ("h8-10", 8, 10)]
    with pytest.raises(ValueError, match="unknown rule 'parity'; valid: recall_first, sum_mod"):
        tasks.build("memory_horizon", rule="parity")
    with pytest.raises(ValueError, match="max_horizon must be an integer in"):
        tasks.build("memory_horizon", seq_len=16, max_horizon=16)


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


def fake_deb(path, member: str, payload: bytes):
    """A Debian package as dpkg builds one: an ar archive of debian-binary, control and data.tar.xz."""
    import io
    import tarfile

    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w:xz") as tar:
        info = tarfile.TarInfo(f"./{member}")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b"x"), ("data.tar.xz", tar_buffer.getvalue())]
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(out)
    return path


def test_gcide_is_taken_out_of_its_debian_package(tmp_path, capsys):
    import gzip

    from seqbench.cli import main
    from seqbench.tasks.gcide import MEMBER, fetch_gcide

    text = b"Abandon \\A*ban\"don\\, v. t. To give up wholly. [1913 Webster]\n" * 200
    deb = fake_deb(tmp_path / "dict-gcide_0.48.5_all.deb", MEMBER, gzip.compress(text))
    main(["data", "gcide", "--deb", str(deb), "--data-dir", str(tmp_path / "data")])
    assert "gcide.dict.dz" in capsys.readouterr().out
    task = tasks.build("bytes", path="gcide.dict.dz", data_dir=str(tmp_path / "data"), seq_len=32)
    assert bytes(np.asarray(task.data)) == text
    assert fetch_gcide(str(tmp_path / "data")) == tmp_path / "data" / "gcide.dict.dz"  # there already: nothing fetched
    (tmp_path / "other.deb").write_bytes(b"PK not a deb")
    with pytest.raises(DataError, match="not a Debian package"):
        fetch_gcide(str(tmp_path / "elsewhere"), tmp_path / "other.deb")
    wrong = fake_deb(tmp_path / "wrong.deb", "usr/share/doc/readme", b"x")
    with pytest.raises(DataError, match="does not contain usr/share/dictd/gcide.dict.dz"):
        fetch_gcide(str(tmp_path / "elsewhere"), wrong)


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
