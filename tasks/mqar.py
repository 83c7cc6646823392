"""Multi-query associative recall (Zoology, Arora et al. 2023), generated as Zoology does.

Per sequence: N distinct keys from {1 … V/2 − 1} and N distinct values from {V/2 … V − 1}, paired i
↔ i; a prefix k1 v1 … kN vN; then (L − 2N)/2 even-offset query slots of which N are drawn without
replacement with P(slot g) ∝ (g + 1)^(power − 1), each key written once at offset 2g. Every other
token is 0 — Zoology's `random_non_queries=False`, the setting of its own MQAR experiments (its
Figure-2 configs) and of every result committed here, hence the default — or, with
`random_non_queries=True` (the default of Zoology's generator function), a uniform token from [0,
V): about half of those fall in the key range and act as distractors. The target at each queried key
is its value — exactly N scored positions — and accuracy is the per-sequence fraction of correct
values, averaged over sequences.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from seqbench.tasks.base import IGNORE, TASKS, SliceAccuracy, Task, split_generator


def generate_mqar(batch_size: int, seq_len: int, num_pairs: int, vocab_size: int, power: float,
                  generator: torch.Generator, random_non_queries: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    half = vocab_size // 2
    slots = (seq_len - 2 * num_pairs) // 2
    rows = torch.arange(batch_size)[:, None]
    keys = torch.rand(batch_size, half - 1, generator=generator).argsort(1)[:, :num_pairs] + 1
    values = torch.rand(batch_size, vocab_size - half, generator=generator).argsort(1)[:, :num_pairs] + half
    inputs = torch.zeros(batch_size, seq_len, dtype=torch.long)
    inputs[:, 0 : 2 * num_pairs : 2], inputs[:, 1 : 2 * num_pairs : 2] = keys, values
    weights = (torch.arange(slots, dtype=torch.float64) + 1) ** (power - 1)
    chosen = torch.multinomial(weights.expand(batch_size, slots), num_pairs, replacement=False, generator=generator)
    positions = 2 * num_pairs + 2 * chosen
    inputs[rows, positions] = keys
    targets = torch.full_like(inputs, IGNORE)
    targets[rows, positions] = values
    if random_non_queries:  # drawn last, so the keys, values and slots are those of the 0-filled variant
        filler = torch.randint(vocab_size, inputs.shape, generator=generator)
        inputs = torch.where(inputs == 0, filler, inputs)
    return inputs, targets


@TASKS.register("mqar")
class MQAR(Task):
    """Multi-query associative recall (Zoology's generator), accuracy overall and per (length, pairs).

    Options:
        vocab_size: keys from the lower half, values from the upper half
        seq_len: training sequence length
        num_pairs: key-value pairs per sequence
        power: power-law exponent of the query placement (Zoology's alpha)
        validation_examples: sequences in the validation set
        test_examples: sequences per test configuration
        test_configs: (seq_len, num_pairs) pairs scored on the test split; None = the training one
        random_non_queries: fill non-query positions with uniform random tokens (Zoology's generator default) instead of 0 (its experiments' setting)
    """

    metrics = ("accuracy",)

    @classmethod
    def chance_accuracy(cls, options):
        """A uniform guess among the value tokens (the upper half of the vocabulary)."""
        vocab = options.get("vocab_size", 8192)
        return 1 / (vocab - vocab // 2)

    def __init__(self, *, vocab_size: int = 8192, seq_len: int = 64, num_pairs: int = 4, power: float = 0.01,
                 validation_examples: int = 1000, test_examples: int = 3000,
                 test_configs: Sequence[Sequence[int]] | None = None, random_non_queries: bool = False):
        self.vocab_size, self.seq_len, self.num_pairs, self.power = vocab_size, seq_len, num_pairs, power
        self.examples = {"validation": validation_examples, "test": test_examples}
        if not isinstance(random_non_queries, bool):
            raise ValueError(f"mqar: random_non_queries must be true or false, got {random_non_queries!r}")
        self.random_non_queries = random_non_queries
        self.test_configs = [tuple(c) for c in (test_configs or [(seq_len, num_pairs)])]
        for length, pairs in [(seq_len, num_pairs), *self.test_configs]:
            self._check_config(length, pairs)
        if not 0 < power <= 1:
            raise ValueError(f"mqar: power must lie in (0, 1], got {power}")

    def _check_config(self, length, pairs) -> None:
        if not isinstance(length, int) or length < 2 or length % 2:
            raise ValueError(f"mqar: seq_len must be an even integer ≥ 2, got {length!r}")
        if self.vocab_size <= length:
            raise ValueError(f"mqar: needs vocab_size > seq_len, got vocab_size={self.vocab_size}, seq_len={length}")
        if not isinstance(pairs, int) or pairs < 1 or pairs > self.vocab_size // 2 - 1:
            raise ValueError(f"mqar: num_pairs must be in [1, vocab_size/2 − 1], got {pairs!r}")
        if (length - 2 * pairs) // 2 < pairs:
            raise ValueError(
                f"mqar: {pairs} pairs need {pairs} query slots but seq_len={length} leaves "
                f"{(length - 2 * pairs) // 2}; use seq_len ≥ {4 * pairs}"
            )

    def get_batch(self, split, batch_size, seed):
        self._check_batch_size(batch_size)
        generator = split_generator(self.registry_name, split, seed)
        return generate_mqar(batch_size, self.seq_len, self.num_pairs, self.vocab_size, self.power, generator,
                             self.random_non_queries)

    def eval_batches(self, split, batch_size) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A fixed set per split: for test, `test_examples` sequences of every (length, pairs) config."""
        self._check_batch_size(batch_size)
        configs = self.test_configs if split == "test" else [(self.seq_len, self.num_pairs)]
        total = self.examples.get(split, self.examples["validation"])
        for config_index, (length, pairs) in enumerate(configs):
            generator = split_generator(self.registry_name, f"{split}", 10_000 + config_index)
            for start in range(0, total, batch_size):
                size = min(batch_size, total - start)
                yield generate_mqar(size, length, pairs, self.vocab_size, self.power, generator, self.random_non_queries)

    def evaluation(self):
        return _MQARAccuracy()


class _MQARAccuracy(SliceAccuracy):
    def update(self, logits, inputs, targets):
        pairs = int((targets[0] != IGNORE).sum())
        self.update_with_slices(logits, targets, {f"L{inputs.shape[1]}_N{pairs}": targets != IGNORE})
