"""State tracking, with length generalisation built in: the running product of a sequence of group
elements — `parity` (Z_2 over bits), `modular_arithmetic` (Z_m: a running sum mod m) and
`word_problem` (any group of tasks/groups.py: Z_m, A_5, S_5).

At every position t the input is an element g_t and the target is the state g_1·g_2·…·g_t, so the
whole prefix is scored (per position), and the last position is the state of the whole word.
Training words have lengths uniform in [min_length, max_length] (padded, padding unscored); the
validation split is the training distribution; the test split holds `test_examples` words at each
length of `test_lengths` — up to several times the longest training word — and reports, per length
L, the accuracy over every position (`accuracy/L<L>`) and at the last position (`accuracy/end/L<L>`):
accuracy against length, with the training range marked in the plot (analysis/plots.py).

Vocabulary: 0 padding, 1 … |G| the elements (inputs and targets alike). Train, validation and test
streams never share a generator (tasks/base.split_generator).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from seqbench.tasks.base import IGNORE, TASKS, SliceAccuracy, Task, split_generator
from seqbench.tasks.groups import Group, group


class StateTracking(Task):
    """The running product of group elements (shared by parity, modular_arithmetic and word_problem)."""

    metrics = ("accuracy",)
    group_name = ""

    @classmethod
    def chance_accuracy(cls, options):
        """A uniform guess among the group's elements."""
        return 1 / cls._group(options).order

    @classmethod
    def _group(cls, options) -> Group:
        return group(cls.group_name or options.get("group", "S5"))

    def __init__(self, *, min_length: int = 3, max_length: int = 40, test_lengths: Sequence[int] = (40, 80, 160, 256),
                 validation_examples: int = 512, test_examples: int = 512, group_name: str | None = None):
        name = self.registry_name or "state_tracking"
        for option, value in (("min_length", min_length), ("max_length", max_length), ("validation_examples", validation_examples),
                              ("test_examples", test_examples)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {option} must be a positive integer, got {value!r}")
        if min_length > max_length:
            raise ValueError(f"{name}: min_length ({min_length}) must not exceed max_length ({max_length})")
        lengths = list(test_lengths)
        if not lengths or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in lengths) or lengths != sorted(set(lengths)):
            raise ValueError(f"{name}: test_lengths must be increasing positive integers, got {test_lengths!r}")
        self.group = group(group_name or self.group_name)
        self.min_length, self.max_length, self.test_lengths = min_length, max_length, tuple(lengths)
        self.seq_len = max_length
        self.vocab_size = self.group.order + 1
        self.examples = {"validation": validation_examples, "test": test_examples}

    def _words(self, batch_size: int, length: int, generator, *, ragged: bool):
        """(inputs, targets) of words of `length` (ragged: each of a length uniform in [min_length, length])."""
        words = torch.randint(self.group.order, (batch_size, length), generator=generator)
        inputs, targets = words + 1, self.group.prefix_products(words) + 1
        if ragged:
            lengths = torch.randint(self.min_length, length + 1, (batch_size, 1), generator=generator)
            padding = torch.arange(length) >= lengths
            inputs, targets = inputs.masked_fill(padding, 0), targets.masked_fill(padding, IGNORE)
        return inputs, targets

    def get_batch(self, split, batch_size, seed):
        self._check_batch_size(batch_size)
        return self._words(batch_size, self.max_length, split_generator(self.registry_name, split, seed), ragged=True)

    def eval_batches(self, split, batch_size) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """validation: the training distribution; test: `test_examples` words at every test length."""
        self._check_batch_size(batch_size)
        total = self.examples.get(split, self.examples["validation"])
        lengths = self.test_lengths if split == "test" else (self.max_length,)
        for number, length in enumerate(lengths):
            generator = split_generator(self.registry_name, split, 10_000 + number)
            for start in range(0, total, batch_size):
                yield self._words(min(batch_size, total - start), length, generator, ragged=split != "test")

    def evaluation(self):
        return _LengthAccuracy()


class _LengthAccuracy(SliceAccuracy):
    """Accuracy over every position and at the last position, per word length (test words have one length each)."""

    def update(self, logits, inputs, targets):
        scored = targets != IGNORE
        length = inputs.shape[1]
        last = torch.zeros_like(scored)
        last[:, -1] = scored[:, -1]
        self.update_with_slices(logits, targets, {f"L{length}": scored, f"end/L{length}": last})


@TASKS.register("parity")
class Parity(StateTracking):
    """Parity of a bit string, at every prefix (Z_2): the simplest state a diagonal recurrence needs a sign to track.

    Options:
        min_length: shortest training word
        max_length: longest training word (and the training sequence length)
        test_lengths: word lengths of the test split (beyond max_length: length generalisation)
        validation_examples: words in the validation set
        test_examples: words per test length
    """

    group_name = "Z2"

    def __init__(self, *, min_length: int = 3, max_length: int = 40, test_lengths: Sequence[int] = (40, 80, 160, 256),
                 validation_examples: int = 512, test_examples: int = 512):
        super().__init__(min_length=min_length, max_length=max_length, test_lengths=test_lengths,
                         validation_examples=validation_examples, test_examples=test_examples)


@TASKS.register("modular_arithmetic")
class ModularArithmetic(StateTracking):
    """A running sum modulo m at every prefix (Z_m): counting mod m, a rotation by 2π/m per unit.

    Options:
        modulus: m
        min_length: shortest training word
        max_length: longest training word (and the training sequence length)
        test_lengths: word lengths of the test split (beyond max_length: length generalisation)
        validation_examples: words in the validation set
        test_examples: words per test length
    """

    @classmethod
    def _group(cls, options) -> Group:
        return group(f"Z{options.get('modulus', 5)}")

    def __init__(self, *, modulus: int = 5, min_length: int = 3, max_length: int = 40, test_lengths: Sequence[int] = (40, 80, 160, 256),
                 validation_examples: int = 512, test_examples: int = 512):
        if not isinstance(modulus, int) or isinstance(modulus, bool) or modulus < 2:
            raise ValueError(f"modular_arithmetic: modulus must be an integer ≥ 2, got {modulus!r}")
        super().__init__(min_length=min_length, max_length=max_length, test_lengths=test_lengths,
                         validation_examples=validation_examples, test_examples=test_examples, group_name=f"Z{modulus}")


@TASKS.register("word_problem")
class WordProblem(StateTracking):
    """The word problem of a finite group: the running product of its elements (Z_m abelian; A5, S5 not).

    Options:
        group: 'Z<m>' (cyclic, e.g. 'Z5'), 'A5' (alternating, 60 elements) or 'S5' (symmetric, 120)
        min_length: shortest training word
        max_length: longest training word (and the training sequence length)
        test_lengths: word lengths of the test split (beyond max_length: length generalisation)
        validation_examples: words in the validation set
        test_examples: words per test length
    """

    def __init__(self, *, group: str = "S5", min_length: int = 3, max_length: int = 40, test_lengths: Sequence[int] = (40, 80, 160, 256),
                 validation_examples: int = 512, test_examples: int = 512):
        super().__init__(min_length=min_length, max_length=max_length, test_lengths=test_lengths,
                         validation_examples=validation_examples, test_examples=test_examples, group_name=group)
