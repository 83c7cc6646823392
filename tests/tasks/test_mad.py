"""MAD's six tasks (tasks/mad_generators.py, tasks/mad.py) hold the properties mad-lab's generators
define: vocabularies and special tokens, which positions are scored at training and at test, the
noise rate, the copy targets, the fixed memorisation map, and datasets fixed by their seed."""
import numpy as np
import pytest
import torch

from seqbench import tasks
from seqbench.tasks import mad_generators as g
from seqbench.tasks.base import IGNORE

RNG = lambda seed=0: np.random.default_rng(seed)  # noqa: E731


def test_in_context_recall_scores_only_values_of_keys_seen_before():
    for seed in range(20):
        inputs, train, test = g.in_context_recall(RNG(seed), vocab_size=16, seq_len=128)
        assert len(inputs) == len(train) == len(test) == 127
        assert (train == np.concatenate([inputs[1:], train[-1:]])).all()  # training: the next token everywhere
        full = np.concatenate([inputs, train[-1:]])
        keys, values = full[0::2], full[1::2]
        assert keys.max() < 8 and values.min() >= 8 and values.max() < 16  # lower half keys, upper half values
        for position in np.flatnonzero(test != IGNORE):  # position p predicts token p + 1, a value
            pair = (position + 1) // 2
            assert (position + 1) % 2 == 1 and test[position] == values[pair]
            assert keys[pair] in keys[:pair]  # its key was shown before
        shown = {}
        for k, v in zip(keys, values):
            assert shown.setdefault(k, v) == v  # one value per key within a sequence


def test_noisy_recall_puts_noise_at_the_configured_rate_from_its_own_tokens():
    noise_slots = total = 0
    for seed in range(200):
        inputs, _, test = g.in_context_recall(RNG(seed), vocab_size=32, seq_len=128, noise_vocab_size=16, frac_noise=0.2)
        full = np.concatenate([inputs, [0]])
        pairs = full.reshape(-1, 2)[:-1]
        is_noise = (pairs >= 16).all(1)
        noise_slots, total = noise_slots + is_noise.sum(), total + len(pairs)
        assert ((pairs >= 16).any(1) == is_noise).all()  # a slot is all noise or a key-value pair
        assert (test[test != IGNORE] < 16).all()  # noise is never scored
    assert abs(noise_slots / total - 0.2) < 0.01


def test_fuzzy_recall_uses_full_size_keys_at_test_and_scores_whole_values():
    inputs, _, test = g.fuzzy_in_context_recall(RNG(3), vocab_size=16, seq_len=128, is_training=False)
    assert len(inputs) == 128 and (test != IGNORE).sum() >= 1
    scored = test[test != IGNORE]
    assert scored.min() >= 7 and scored.max() <= 14  # values: the upper half of the 15 non-special tokens
    assert test[-1] != IGNORE  # the final probe's value is scored
    train_inputs, _, train_test = g.fuzzy_in_context_recall(RNG(3), vocab_size=16, seq_len=128, is_training=True)
    padding = int(np.argmax(train_inputs != 15))  # padded on the left, with the top token, to the length
    assert len(train_inputs) == 128 and (train_inputs[:padding] == 15).all() and (train_test[:padding] == IGNORE).all()
    assert (train_inputs[padding:] < 15).all()  # keys 0–6 and values 7–14 of the 15 non-special tokens


def test_selective_copying_targets_are_the_tokens_in_order_after_the_copy_token():
    inputs, train, test = g.selective_copying(RNG(5), vocab_size=16, seq_len=256, num_tokens_to_copy=16)
    assert len(inputs) == 256 and (train == test).all()
    copy_at = int(np.flatnonzero(inputs == 15)[0])
    assert copy_at == 256 - 16 - 1 and (inputs[copy_at + 1:] == 14).all()
    copied = inputs[:copy_at][inputs[:copy_at] != 14]
    assert len(copied) == 16 and (test[copy_at + 1:] == copied).all() and (test[:copy_at + 1] == IGNORE).all()


def test_memorization_draws_from_one_fixed_map_and_scores_the_insert_positions():
    kv_map = g.memorization_map(255)
    assert kv_map == g.memorization_map(255) and set(kv_map) == set(range(127)) and min(kv_map.values()) >= 127
    inputs, train, test = g.memorization(RNG(1), vocab_size=256, seq_len=32, kv_map=kv_map)
    assert (inputs[1::2] == 255).all() and (test[0::2] == IGNORE).all()
    assert all(test[2 * i + 1] == kv_map[int(inputs[2 * i])] for i in range(16)) and (train == test).all()


def test_compression_reconstructs_every_token_and_ends_with_the_compression_token():
    inputs, train, test = g.compression(RNG(2), vocab_size=16, seq_len=32)
    assert inputs[-1] == 15 and (inputs[:-1] < 15).all() and (train == inputs).all() and (test == inputs).all()


@pytest.mark.parametrize("name", ["mad_in_context_recall", "mad_noisy_in_context_recall", "mad_fuzzy_in_context_recall",
                                  "mad_selective_copying", "mad_compression", "mad_memorization"])
def test_each_task_has_fixed_datasets_per_seed_and_test_scored_where_determined(name):
    task = tasks.build(name, num_train_examples=64, num_test_examples=32)
    again = tasks.build(name, num_train_examples=64, num_test_examples=32)
    other = tasks.build(name, num_train_examples=64, num_test_examples=32, data_seed=1)
    for split in ("train", "validation", "test"):
        inputs, targets = task.dataset(split)
        assert torch.equal(inputs, again.dataset(split)[0]) and not torch.equal(inputs, other.dataset(split)[0])
        assert inputs.max() < task.vocab_size and inputs.min() >= 0
    assert not torch.equal(task.dataset("validation")[0], task.dataset("test")[0])
    x, y = task.get_batch("train", 8, seed=3)
    assert torch.equal(x, task.get_batch("train", 8, seed=3)[0]) and len(x) == 8
    test_scored = (task.dataset("test")[1] != IGNORE).float().mean()
    assert 0 < test_scored <= (task.dataset("train")[1] != IGNORE).float().mean()  # test scores no more than training


def test_a_perfect_predictor_scores_one_and_mad_macro_accuracy_averages_classes():
    task = tasks.build("mad_selective_copying", num_train_examples=16, num_test_examples=16)
    evaluation = task.evaluation()
    for inputs, targets in task.eval_batches("test", 8):
        evaluation.update(torch.nn.functional.one_hot(targets.clamp_min(0), task.vocab_size).float(), inputs, targets)
    assert evaluation.result() == {"accuracy": 1.0, "macro_accuracy": 1.0}
    skewed = task.evaluation()  # right on class 3 (one position), wrong on class 5 (three): micro 1/4, macro 1/2
    targets = torch.tensor([[3, 5, 5, 5]])
    skewed.update(torch.nn.functional.one_hot(torch.tensor([[3, 0, 0, 0]]), 16).float(), targets, targets)
    assert skewed.result() == {"accuracy": 0.25, "macro_accuracy": 0.5}


def test_compression_is_refused_with_a_causal_backbone_and_trains_as_an_autoencoder(tmp_path):
    from seqbench.bench.config import parse_run_config

    with pytest.raises(ValueError, match="scored with model.backbone = 'autoencoder', got 'lm'"):
        parse_run_config({"task": {"name": "mad_compression"}})
    config = parse_run_config({"task": {"name": "mad_compression", "options": {"num_train_examples": 64, "num_test_examples": 16}},
                               "model": {"d_model": 32, "backbone": "autoencoder", "name": "retnet"}, "steps": 4, "eval_every": 4,
                               "batch_size": 8, "threads": 1})
    model = config.model.build(vocab_size=16)
    tokens = torch.randint(0, 16, (2, 32))
    assert model(tokens).shape == (2, 32, 16)
    changed = tokens.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 16
    assert not torch.allclose(model(tokens)[:, -1], model(changed)[:, -1])  # the code sees the whole sequence


def test_seqbench_tasks_lists_the_six(capsys):
    from seqbench.cli import main

    main(["tasks"])
    listed = capsys.readouterr().out
    for name in ("in_context_recall", "fuzzy_in_context_recall", "noisy_in_context_recall", "selective_copying",
                 "compression", "memorization"):
        assert f"\nmad_{name}\n" in f"\n{listed}"


def test_the_shipped_mad_sweeps_hold_mads_settings():
    from pathlib import Path

    from seqbench.bench.sweep import load_sweep

    sweep = load_sweep(Path(__file__).parents[2] / "sweeps" / "mad" / "selective_copying.toml")
    settings = {(r.task.options["vocab_size"], r.task.options["seq_len"], r.task.options["num_train_examples"],
                 r.task.options["num_tokens_to_copy"]) for r in sweep.runs}
    assert len(settings) == 1 + 3 + 2 + 4 + 3 and (16, 256, 12800, 16) in settings  # the baseline and 12 changes
    assert len(sweep.runs) == len(settings) * 6 * 3 * 2  # × mixers × lrs × weight decays
