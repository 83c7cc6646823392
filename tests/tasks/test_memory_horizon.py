"""The memory-horizon task (tasks/memory_horizon.py): hand-computed examples, rules, buckets."""
import pytest
import torch

from seqbench import tasks
from seqbench.tasks.base import IGNORE


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
