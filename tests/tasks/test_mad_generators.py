"""MAD's instance generators (tasks/mad_generators.py), each against the definition it implements:
what is scored, where, and with which answer."""
import numpy as np
import pytest

from seqbench.tasks.mad_generators import (
    compression,
    in_context_recall,
    memorization,
    memorization_map,
    selective_copying,
)

IGNORE = -100


def test_in_context_recall_scores_each_repeated_key_with_its_one_value():
    rng = np.random.default_rng(0)
    inputs, shifted, targets = in_context_recall(rng, vocab_size=16, seq_len=64)
    assert len(inputs) == len(targets) == 63 and np.array_equal(inputs[1:], shifted[:-1])
    sequence = np.concatenate([inputs, shifted[-1:]])
    values = {}
    for position in range(0, len(sequence) - 1, 2):
        key, value = int(sequence[position]), int(sequence[position + 1])
        assert key < 8 <= value  # keys from the lower half, values from the upper
        assert values.setdefault(key, value) == value  # one value per key in a sequence
    scored = np.flatnonzero(targets != IGNORE)
    assert len(scored) >= 1 and all(targets[i] == values[int(inputs[i])] for i in scored)


def test_memorization_answers_from_one_fixed_map_at_every_insert_token():
    kv_map = memorization_map(32)
    assert memorization_map(32) == kv_map and sorted(kv_map) == list(range(16)) and sorted(kv_map.values()) == list(range(16, 32))
    inputs, targets, _ = memorization(np.random.default_rng(1), vocab_size=32, seq_len=20, kv_map=kv_map)
    assert (inputs[1::2] == 31).all() and (targets[::2] == IGNORE).all()
    assert all(targets[i + 1] == kv_map[int(inputs[i])] for i in range(0, 20, 2))


def test_selective_copying_scores_the_copied_tokens_in_order_after_the_copy_token():
    inputs, targets, _ = selective_copying(np.random.default_rng(2), vocab_size=16, seq_len=40, num_tokens_to_copy=5)
    copy_at = int(np.flatnonzero(inputs == 15)[0])
    to_copy = [int(t) for t in inputs[:copy_at] if t != 14]
    assert len(to_copy) == 5 and list(targets[-5:]) == to_copy and (targets[:-5] == IGNORE).all()
    with pytest.raises(ValueError, match="seq_len must exceed 2 × num_tokens_to_copy \\+ 1 = 11, got 11"):
        selective_copying(np.random.default_rng(2), vocab_size=16, seq_len=11, num_tokens_to_copy=5)


def test_compression_reconstructs_its_input_ending_in_the_compression_token():
    inputs, targets, test_targets = compression(np.random.default_rng(3), vocab_size=16, seq_len=12)
    assert inputs[-1] == 15 and (inputs[:-1] < 15).all() and np.array_equal(inputs, targets) and np.array_equal(targets, test_targets)
