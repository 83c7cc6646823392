"""MAD's six tasks (tasks/mad_generators.py) as seqbench tasks, with mad-lab's protocol: a fixed
training set of `num_train_examples` sequences (fewer is a difficulty axis), a test set of
`num_test_examples`, and a validation set of as many (seqbench chooses the lr on it; mad-lab has
none), each generated once from `data_seed`. Training targets are the next token everywhere for the
recall tasks (mad-lab trains on shifted inputs); validation and test are scored only where the
answer is determined. Reported: `accuracy` over the scored positions (micro) and `macro_accuracy`,
the mean over classes of per-class accuracy — mad-lab's metric (torchmetrics' MulticlassAccuracy,
whose default average is "macro"), which the MAD score averages. Compression is scored with an
encoder–decoder (model.backbone = "autoencoder"), as in MAD.
"""
from __future__ import annotations

import abc
import hashlib
import inspect
from collections.abc import Iterator

import numpy as np
import torch

from seqbench.tasks import mad_generators as generators
from seqbench.tasks.base import IGNORE, TASKS, Evaluation, Task, check_split, split_generator


class MADAccuracy(Evaluation):
    def __init__(self):
        self.correct, self.total = 0, 0
        self.class_correct: dict[int, int] = {}
        self.class_total: dict[int, int] = {}

    def update(self, logits, inputs, targets):
        scored = targets != IGNORE
        hits = (logits.argmax(-1) == targets) & scored
        self.correct += int(hits.sum())
        self.total += int(scored.sum())
        for cls, count in zip(*torch.unique(targets[scored], return_counts=True)):
            self.class_total[int(cls)] = self.class_total.get(int(cls), 0) + int(count)
        for cls, count in zip(*torch.unique(targets[hits], return_counts=True)):
            self.class_correct[int(cls)] = self.class_correct.get(int(cls), 0) + int(count)

    def result(self):
        per_class = [self.class_correct.get(cls, 0) / total for cls, total in self.class_total.items()]
        return {"accuracy": self.correct / max(self.total, 1), "macro_accuracy": float(np.mean(per_class)) if per_class else 0.0}


_DATASETS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # a few datasets per process, oldest dropped first


class MADTask(Task):
    """Common to the six: fixed datasets per split, generated once per process and options."""

    metrics = ("accuracy", "macro_accuracy")

    @classmethod
    def chance_accuracy(cls, options):
        """A uniform guess over the vocabulary (every target is a vocabulary token; per class too, so
        for the macro accuracy as well)."""
        return 1 / options.get("vocab_size", inspect.signature(cls.__init__).parameters["vocab_size"].default)

    def __init__(self, *, vocab_size: int, seq_len: int, num_train_examples: int, num_test_examples: int, data_seed: int):
        for name, value, least in (("vocab_size", vocab_size, 4), ("seq_len", seq_len, 4),
                                   ("num_train_examples", num_train_examples, 1), ("num_test_examples", num_test_examples, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{self.registry_name}: {name} must be an integer ≥ {least}, got {value!r}")
        self.vocab_size, self.seq_len, self.data_seed = vocab_size, seq_len, data_seed
        self.sizes = {"train": num_train_examples, "validation": num_test_examples, "test": num_test_examples}

    @abc.abstractmethod
    def instance(self, rng: np.random.Generator, split: str):
        """(inputs, training targets, test targets) of one sequence."""

    def dataset(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's fixed (inputs, targets), generated once per process from everything that fixes it."""
        check_split(split)
        settings = tuple(sorted((k, v) for k, v in vars(self).items() if isinstance(v, (int, float, bool, str))))
        key = (self.registry_name, split, self.sizes[split], settings)
        if key not in _DATASETS:
            if len(_DATASETS) >= 16:
                _DATASETS.pop(next(iter(_DATASETS)))
            digest = hashlib.sha256(repr(key).encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            rows = [self.instance(rng, split) for _ in range(self.sizes[split])]
            which = 1 if split == "train" else 2  # training targets, or the determined positions only
            _DATASETS[key] = (torch.from_numpy(np.stack([row[0] for row in rows])).long(),
                              torch.from_numpy(np.stack([row[which] for row in rows])).long())
        return _DATASETS[key]

    def get_batch(self, split, batch_size, seed):
        self._check_batch_size(batch_size)
        inputs, targets = self.dataset(split)
        rows = torch.randint(len(inputs), (batch_size,), generator=split_generator(self.registry_name, split, seed))
        return inputs[rows], targets[rows]

    def eval_batches(self, split, batch_size) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._check_batch_size(batch_size)
        inputs, targets = self.dataset(split)
        for first in range(0, len(inputs), batch_size):
            yield inputs[first:first + batch_size], targets[first:first + batch_size]

    def evaluation(self):
        return MADAccuracy()


def _common(vocab_size, seq_len, num_train_examples, num_test_examples, data_seed):
    return {"vocab_size": vocab_size, "seq_len": seq_len, "num_train_examples": num_train_examples,
            "num_test_examples": num_test_examples, "data_seed": data_seed}


@TASKS.register("mad_in_context_recall")
class InContextRecall(MADTask):
    """MAD in-context recall: key-value pairs, scored at values of keys seen before (multi-query).

    Options:
        vocab_size: tokens, the top one special
        seq_len: sequence length (even)
        num_train_examples: size of the fixed training set (MAD: 12,800; fewer is harder)
        num_test_examples: size of the test set, and of the validation set
        data_seed: fixes every dataset
        multi_query: score every repeated key's value, not only the final probe
    """

    def __init__(self, *, vocab_size: int = 16, seq_len: int = 128, num_train_examples: int = 12_800,
                 num_test_examples: int = 1_280, data_seed: int = 0, multi_query: bool = True):
        super().__init__(**_common(vocab_size, seq_len, num_train_examples, num_test_examples, data_seed))
        self.multi_query = multi_query

    def instance(self, rng, split):
        return generators.in_context_recall(rng, vocab_size=self.vocab_size, seq_len=self.seq_len, multi_query=self.multi_query)


@TASKS.register("mad_noisy_in_context_recall")
class NoisyInContextRecall(MADTask):
    """MAD noisy in-context recall: in-context recall with noise tokens between the pairs.

    Options:
        vocab_size: tokens, the noise vocabulary included (MAD: 32 = 16 + 16 noise)
        seq_len: sequence length (even)
        num_train_examples: size of the fixed training set
        num_test_examples: size of the test set, and of the validation set
        data_seed: fixes every dataset
        noise_vocab_size: tokens that only ever appear as noise
        frac_noise: probability that a pair's slot holds noise
    """

    def __init__(self, *, vocab_size: int = 32, seq_len: int = 128, num_train_examples: int = 12_800,
                 num_test_examples: int = 1_280, data_seed: int = 0, noise_vocab_size: int = 16, frac_noise: float = 0.2):
        super().__init__(**_common(vocab_size, seq_len, num_train_examples, num_test_examples, data_seed))
        if not 0 <= frac_noise < 1 or noise_vocab_size < 1 or noise_vocab_size > vocab_size - 4:
            raise ValueError(f"{self.registry_name}: need 0 ≤ frac_noise < 1 and 1 ≤ noise_vocab_size ≤ vocab_size − 4, "
                             f"got {frac_noise!r}, {noise_vocab_size!r}")
        self.noise_vocab_size, self.frac_noise = noise_vocab_size, frac_noise

    def instance(self, rng, split):
        return generators.in_context_recall(rng, vocab_size=self.vocab_size, seq_len=self.seq_len,
                                            noise_vocab_size=self.noise_vocab_size, frac_noise=self.frac_noise)


@TASKS.register("mad_fuzzy_in_context_recall")
class FuzzyInContextRecall(MADTask):
    """MAD fuzzy in-context recall: keys and values of several adjacent tokens.

    Options:
        vocab_size: tokens, the top one special
        seq_len: sequence length
        num_train_examples: size of the fixed training set
        num_test_examples: size of the test set, and of the validation set
        data_seed: fixes every dataset
        k_motif_size: a key is 1 … k_motif_size tokens (at test: exactly k_motif_size)
        v_motif_size: a value is 1 … v_motif_size tokens
    """

    def __init__(self, *, vocab_size: int = 16, seq_len: int = 128, num_train_examples: int = 12_800,
                 num_test_examples: int = 1_280, data_seed: int = 0, k_motif_size: int = 3, v_motif_size: int = 3):
        super().__init__(**_common(vocab_size, seq_len, num_train_examples, num_test_examples, data_seed))
        if (vocab_size - 1) // 2 < max(k_motif_size, v_motif_size):
            raise ValueError(f"{self.registry_name}: vocab_size {vocab_size} leaves fewer key or value tokens than a motif needs")
        self.k_motif_size, self.v_motif_size = k_motif_size, v_motif_size

    def instance(self, rng, split):
        return generators.fuzzy_in_context_recall(rng, vocab_size=self.vocab_size, seq_len=self.seq_len,
                                                  k_motif_size=self.k_motif_size, v_motif_size=self.v_motif_size,
                                                  is_training=split == "train")


@TASKS.register("mad_selective_copying")
class SelectiveCopying(MADTask):
    """MAD selective copying: copy the non-blank tokens, in order, after the copy token.

    Options:
        vocab_size: tokens, the top two special (blank, copy)
        seq_len: sequence length
        num_train_examples: size of the fixed training set
        num_test_examples: size of the test set, and of the validation set
        data_seed: fixes every dataset
        num_tokens_to_copy: tokens scattered among the blanks
    """

    def __init__(self, *, vocab_size: int = 16, seq_len: int = 256, num_train_examples: int = 12_800,
                 num_test_examples: int = 1_280, data_seed: int = 0, num_tokens_to_copy: int = 16):
        super().__init__(**_common(vocab_size, seq_len, num_train_examples, num_test_examples, data_seed))
        if seq_len <= 2 * num_tokens_to_copy + 1:
            raise ValueError(f"{self.registry_name}: seq_len must exceed 2 × num_tokens_to_copy + 1, got {seq_len}")
        self.num_tokens_to_copy = num_tokens_to_copy

    def instance(self, rng, split):
        return generators.selective_copying(rng, vocab_size=self.vocab_size, seq_len=self.seq_len,
                                            num_tokens_to_copy=self.num_tokens_to_copy)


@TASKS.register("mad_compression")
class Compression(MADTask):
    """MAD compression: reconstruct the sequence from one vector (needs model.backbone = "autoencoder").

    Options:
        vocab_size: tokens, the top one the compression token
        seq_len: sequence length
        num_train_examples: size of the fixed training set
        num_test_examples: size of the test set, and of the validation set
        data_seed: fixes every dataset
    """

    backbone = "autoencoder"

    def __init__(self, *, vocab_size: int = 16, seq_len: int = 32, num_train_examples: int = 12_800,
                 num_test_examples: int = 1_280, data_seed: int = 0):
        super().__init__(**_common(vocab_size, seq_len, num_train_examples, num_test_examples, data_seed))

    def instance(self, rng, split):
        return generators.compression(rng, vocab_size=self.vocab_size, seq_len=self.seq_len)


@TASKS.register("mad_memorization")
class Memorization(MADTask):
    """MAD memorization: a fixed key → value map learned into the weights (no in-context information).

    Options:
        vocab_size: tokens, the top one the insert token
        seq_len: sequence length (even)
        num_train_examples: size of the fixed training set (MAD: 256)
        num_test_examples: size of the test set, and of the validation set
        data_seed: fixes every dataset (the map has its own fixed seed, as in mad-lab)
    """

    def __init__(self, *, vocab_size: int = 256, seq_len: int = 32, num_train_examples: int = 256,
                 num_test_examples: int = 1_280, data_seed: int = 0):
        super().__init__(**_common(vocab_size, seq_len, num_train_examples, num_test_examples, data_seed))
        self.kv_map = generators.memorization_map(vocab_size - 1)

    def instance(self, rng, split):
        return generators.memorization(rng, vocab_size=self.vocab_size, seq_len=self.seq_len, kv_map=self.kv_map)
