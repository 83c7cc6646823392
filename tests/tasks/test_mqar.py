"""MQAR (tasks/mqar.py): the generator against its definition, the test slices, bad options."""
import math

import pytest
import torch
import torch.nn.functional as F

from seqbench import tasks
from seqbench.tasks.base import IGNORE


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
