"""parity, modular_arithmetic and word_problem (tasks/state_tracking.py): targets are the prefix
products, streams are fixed by (split, seed) and never shared between splits, the test split holds
words longer than training, and evaluation reports accuracy per length, over every position and at
the last one."""
import pytest
import torch

from seqbench import tasks
from seqbench.tasks import IGNORE


def test_the_three_tasks_are_registered_with_documented_options():
    entries = {entry["name"]: entry for entry in tasks.describe()}
    assert {"parity", "modular_arithmetic", "word_problem"} <= set(entries)
    assert entries["modular_arithmetic"]["options"]["modulus"] == 5 and entries["word_problem"]["options"]["group"] == "S5"


@pytest.mark.parametrize("name,options,order", [("parity", {}, 2), ("modular_arithmetic", {"modulus": 5}, 5),
                                                ("word_problem", {"group": "A5"}, 60)])
def test_targets_are_prefix_products_and_padding_is_unscored(name, options, order):
    task = tasks.build(name, min_length=3, max_length=12, **options)
    inputs, targets = task.get_batch("train", 16, seed=4)
    assert inputs.shape == targets.shape == (16, 12) and task.vocab_size == order + 1
    padded = inputs == 0
    assert bool((targets[padded] == IGNORE).all()) and bool((targets[~padded] != IGNORE).all())
    lengths = (~padded).sum(1)
    assert int(lengths.min()) >= 3 and bool(((~padded).int().diff(dim=1) <= 0).all())  # padding only at the end
    g = task.group
    for row in range(16):
        state = None
        for t in range(int(lengths[row])):
            element = int(inputs[row, t]) - 1
            state = element if state is None else int(g.table[state, element])
            assert int(targets[row, t]) == state + 1
    assert task.chance_accuracy(options) == pytest.approx(1 / order)


def test_streams_are_fixed_by_split_and_seed_and_differ_between_splits():
    task = tasks.build("word_problem", group="S5")
    assert torch.equal(task.get_batch("train", 8, 3)[0], task.get_batch("train", 8, 3)[0])
    train, validation = task.get_batch("train", 8, 3)[0], task.get_batch("validation", 8, 3)[0]
    assert not torch.equal(train, validation)
    test = [inputs for inputs, _ in task.eval_batches("test", 512)]
    assert not any(torch.equal(test[0][:8, :40], batch[:8, :40]) for batch in (train, validation))


def test_the_test_split_holds_every_test_length_and_scores_it_per_length():
    task = tasks.build("parity", max_length=10, test_lengths=[10, 20, 50], test_examples=5)
    batches = list(task.eval_batches("test", 4))
    assert [b[0].shape[1] for b in batches] == [10, 10, 20, 20, 50, 50] and sum(b[0].shape[0] for b in batches) == 15
    assert all(bool((targets != IGNORE).all()) for _, targets in batches)  # test words are whole, unpadded
    perfect = task.evaluate(lambda x: torch.nn.functional.one_hot(_parity(x), task.vocab_size).float(), "test", 4)
    assert perfect["accuracy"] == 1.0 and perfect["accuracy/L50"] == 1.0 and perfect["accuracy/end/L20"] == 1.0
    constant = task.evaluate(lambda x: torch.nn.functional.one_hot(torch.ones_like(x), task.vocab_size).float(), "test", 4)
    assert 0.3 < constant["accuracy/L50"] < 0.7 and set(constant) >= {"accuracy/L10", "accuracy/end/L10", "accuracy/end/L50"}


def _parity(inputs):
    return (inputs - 1).cumsum(1) % 2 + 1


@pytest.mark.parametrize("name,options,message", [
    ("word_problem", {"group": "D4"}, r"unknown group 'D4'; valid: Z<m> \(e.g. Z5\), A5, S5"),
    ("modular_arithmetic", {"modulus": 1}, "modulus must be an integer ≥ 2"),
    ("parity", {"min_length": 50, "max_length": 40}, r"min_length \(50\) must not exceed max_length \(40\)"),
    ("parity", {"test_lengths": [80, 40]}, "test_lengths must be increasing positive integers"),
])
def test_bad_options_are_one_clear_error(name, options, message):
    with pytest.raises(ValueError, match=message):
        tasks.build(name, **options)
