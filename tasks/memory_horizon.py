"""Memory horizon: a forgetting probe in the spirit of the GateLoop paper's synthetic task.

The paper's exact definition is unpublished; THIS DEFINITION IS SEQBENCH'S OWN. A sequence is a run
of segments; each segment is a RESET token followed by h data tokens (h drawn uniformly from
1 … max_horizon). At every data token the target is a function of the data tokens since the last
RESET only:
  - rule "recall_first": the segment's first data token (remember one token, forget the last segment's);
  - rule "sum_mod":      the running sum of the segment's symbols modulo num_symbols.
The horizon — the distance from the last RESET — is the controlled variable, and accuracy is
reported per horizon bucket. A model with input-dependent transitions can shrink its state at a
RESET — to zero only if its parameterisation lets |a| reach 0: GateLoop's default σ(|z|) keeps
|a| ≥ ½, so it can at best halve the old state per step; a fixed-decay model cannot react at all
and must trade memory length against interference.

Vocabulary: 0 padding (unused), 1 … num_symbols data symbols, num_symbols + 1 RESET.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from seqbench.tasks.base import IGNORE, TASKS, SliceAccuracy, Task, split_generator

RULES = ("recall_first", "sum_mod")


def last_reset_positions(is_reset: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(is_reset.shape[1], device=is_reset.device)
    return torch.cummax(torch.where(is_reset, positions, 0), dim=1).values


def generate_memory_horizon(batch_size, seq_len, num_symbols, max_horizon, rule, generator):
    reset = num_symbols + 1
    symbols = torch.randint(1, num_symbols + 1, (batch_size, seq_len), generator=generator)
    is_reset = torch.zeros(batch_size, seq_len, dtype=torch.bool)
    for row in range(batch_size):  # segment starts: 0, then every 1 + h positions
        position = 0
        while position < seq_len:
            is_reset[row, position] = True
            position += 1 + int(torch.randint(1, max_horizon + 1, (1,), generator=generator))
    inputs = torch.where(is_reset, torch.full_like(symbols, reset), symbols)
    if rule == "recall_first":
        first_position = (last_reset_positions(is_reset) + 1).clamp(max=seq_len - 1)
        targets = inputs.gather(1, first_position)
    else:  # running sum of the symbols (1-based) since the reset, as a symbol id
        zero_based = torch.where(is_reset, 0, symbols - 1)
        running = zero_based.cumsum(1)
        at_reset = torch.where(is_reset, running, 0).cummax(1).values  # sum up to the last reset
        targets = (running - at_reset) % num_symbols + 1
    return inputs, torch.where(is_reset, IGNORE, targets)


@TASKS.register("memory_horizon")
class MemoryHorizon(Task):
    """Forgetting probe (seqbench's own definition): targets depend only on tokens since the last RESET.

    Options:
        seq_len: sequence length
        num_symbols: alphabet size (RESET and padding come on top)
        max_horizon: longest segment between RESETs
        rule: 'recall_first' (the segment's first symbol) or 'sum_mod' (running sum mod num_symbols)
        bucket_edges: distance-from-RESET buckets accuracy is reported for
        validation_examples: sequences in the validation set
        test_examples: sequences in the test set
    """

    metrics = ("accuracy",)

    @classmethod
    def chance_accuracy(cls, options):
        """A uniform guess among the data symbols."""
        return 1 / options.get("num_symbols", 16)

    def __init__(self, *, seq_len: int = 256, num_symbols: int = 16, max_horizon: int = 64,
                 rule: str = "recall_first", bucket_edges: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
                 validation_examples: int = 500, test_examples: int = 1000):
        if rule not in RULES:
            raise ValueError(f"memory_horizon: unknown rule {rule!r}; valid: {', '.join(RULES)}")
        if not isinstance(max_horizon, int) or not 1 <= max_horizon < seq_len:
            raise ValueError(f"memory_horizon: max_horizon must be an integer in [1, seq_len), got {max_horizon!r}")
        if not isinstance(num_symbols, int) or num_symbols < 2:
            raise ValueError(f"memory_horizon: num_symbols must be an integer ≥ 2, got {num_symbols!r}")
        if list(bucket_edges) != sorted(set(bucket_edges)) or bucket_edges[0] < 1:
            raise ValueError(f"memory_horizon: bucket_edges must be increasing and ≥ 1, got {bucket_edges}")
        self.seq_len, self.num_symbols, self.max_horizon, self.rule = seq_len, num_symbols, max_horizon, rule
        self.vocab_size = num_symbols + 2
        self.bucket_edges = tuple(e for e in bucket_edges if e <= max_horizon) or (1,)
        self.examples = {"validation": validation_examples, "test": test_examples}

    def _generate(self, batch_size, generator):
        return generate_memory_horizon(batch_size, self.seq_len, self.num_symbols, self.max_horizon, self.rule, generator)

    def get_batch(self, split, batch_size, seed):
        self._check_batch_size(batch_size)
        return self._generate(batch_size, split_generator(self.registry_name, split, seed))

    def eval_batches(self, split, batch_size) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._check_batch_size(batch_size)
        generator = split_generator(self.registry_name, split, 10_000)
        total = self.examples.get(split, self.examples["validation"])
        for start in range(0, total, batch_size):
            yield self._generate(min(batch_size, total - start), generator)

    def horizon(self, inputs: torch.Tensor) -> torch.Tensor:
        """Distance of every position from the last RESET (0 at a RESET)."""
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        return positions - last_reset_positions(inputs == self.num_symbols + 1)

    def bucket_names(self) -> list[tuple[str, int, int]]:
        edges = [*self.bucket_edges, self.max_horizon + 1]
        return [(f"h{low}-{high - 1}", low, high - 1) for low, high in zip(edges[:-1], edges[1:]) if low < high]

    def evaluation(self):
        return _HorizonAccuracy(self)


class _HorizonAccuracy(SliceAccuracy):
    def __init__(self, task: MemoryHorizon):
        super().__init__()
        self.task = task

    def update(self, logits, inputs, targets):
        horizon = self.task.horizon(inputs)
        slices = {name: (horizon >= low) & (horizon <= high) for name, low, high in self.task.bucket_names()}
        self.update_with_slices(logits, targets, slices)
