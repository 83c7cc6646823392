"""The task registry and the contract every task keeps (tasks/base.py, tasks/__init__.py)."""
import pytest
import torch

from seqbench import tasks


# --- registry -----------------------------------------------------------------------------------
def test_registry_errors():
    with pytest.raises(ValueError, match="unknown task 'mqr'; valid tasks: bytes, enwik8, mad_compression, .*, memory_horizon, "
                                         "modular_arithmetic, mqar, parity, word_problem"):
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
