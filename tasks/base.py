"""The task interface: batches of (inputs, targets) and the task's own scoring.

Targets hold −100 wherever nothing is scored. Evaluation is an accumulator so that metrics over a
whole split (bits per byte over 5M bytes, accuracy per slice) never need the split in memory.
"""
from __future__ import annotations

import abc
import hashlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from seqbench.core import Registry

IGNORE = -100
SPLITS = ("train", "validation", "test")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def split_generator(task: str, split: str, seed: int) -> torch.Generator:
    """A generator whose stream is fixed by (task, split, seed) and differs between splits."""
    check_split(split)
    digest = hashlib.sha256(f"{task}/{split}/{seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


class Evaluation(abc.ABC):
    @abc.abstractmethod
    def update(self, logits: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: logits (B, L, V), inputs and targets (B, L)."""

    @abc.abstractmethod
    def result(self) -> dict[str, float]:
        """Metric name → value over everything added."""


class Task(abc.ABC):
    registry_name = ""
    vocab_size: int
    seq_len: int
    metrics: tuple[str, ...] = ()  # what `result()` always reports: the names early stopping may use
    backbone: str = "lm"  # the model.backbone it is scored with (MAD's compression: "autoencoder")

    @classmethod
    def vocab_size_of(cls, options: dict) -> int:
        """The vocabulary these options give, without reading data (for parameter counts)."""
        return cls(**options).vocab_size

    @classmethod
    def seq_len_of(cls, options: dict) -> int | None:
        """The training window these options give, without reading data: the length a state that grows
        with the context (softmax attention's KV cache) is counted at, as the runner counts it."""
        return getattr(cls(**options), "seq_len", None)

    @classmethod
    def content_identity(cls, options: dict) -> dict | None:
        """What identifies the data these options read, by content (a corpus's size and sha256), so
        that two different files under one name never share a run id; None for generated data."""
        return None

    def verify_data(self, recorded: dict | None) -> None:  # noqa: B027 — a hook: generated data has nothing to verify
        """Raise if the data this task reads now is not the data a run's identity records
        (`content_identity` at configuration time). Generated data has nothing to verify."""

    @classmethod
    def chance_accuracy(cls, options: dict) -> float | None:
        """The accuracy of guessing uniformly among the possible answers (plots draw it as a line);
        None where the task has no accuracy or no single chance level."""
        return None

    @classmethod
    def check_values(cls, options: dict) -> None:
        """Reject bad option values when a config is built, not on the cluster. Synthetic tasks are
        cheap to build, so building one is the check; tasks that read data override this."""
        cls(**options)

    @abc.abstractmethod
    def get_batch(self, split: str, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), LongTensors (batch_size, seq_len); the same arguments give the same batch."""

    @abc.abstractmethod
    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole evaluation set of `split`, in order."""

    @abc.abstractmethod
    def evaluation(self) -> Evaluation:
        """A fresh accumulator of this task's metrics."""

    def evaluate(self, predict, split: str, batch_size: int) -> dict[str, float]:
        """Metrics of `predict(inputs) → logits` over the whole evaluation set of `split`."""
        accumulator = self.evaluation()
        for inputs, targets in self.eval_batches(split, batch_size):
            accumulator.update(predict(inputs), inputs, targets)
        return accumulator.result()

    @staticmethod
    def _check_batch_size(batch_size: int) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


# tasks from outside the package: the entry-point group `seqbench.tasks`, or "my_package.my_module:MyTask"
TASKS = Registry("task", base=Task, entry_points="seqbench.tasks")


class SliceAccuracy(Evaluation):
    """Mean per-sequence accuracy over scored positions, overall and per named slice of positions."""

    def __init__(self):
        self.sequence_accuracy_sum = 0.0
        self.sequences = 0
        self.slice_correct: dict[str, int] = {}
        self.slice_total: dict[str, int] = {}

    def update_with_slices(self, logits, targets, slices: dict[str, torch.Tensor]) -> None:
        """slices: name → bool mask (B, L) of the scored positions that belong to it."""
        scored = targets != IGNORE
        correct = (logits.argmax(-1) == targets) & scored
        per_sequence = scored.sum(1)
        has_scored = per_sequence > 0
        self.sequence_accuracy_sum += (correct.sum(1)[has_scored] / per_sequence[has_scored]).sum().item()
        self.sequences += int(has_scored.sum())
        for name, mask in slices.items():
            self.slice_correct[name] = self.slice_correct.get(name, 0) + int((correct & mask).sum())
            self.slice_total[name] = self.slice_total.get(name, 0) + int((scored & mask).sum())

    def result(self) -> dict[str, float]:
        metrics = {"accuracy": self.sequence_accuracy_sum / max(self.sequences, 1)}
        for name, total in self.slice_total.items():
            if total:
                metrics[f"accuracy/{name}"] = self.slice_correct[name] / total
        return metrics


class BitsPerByte(Evaluation):
    """Bits per byte over every scored byte and, given `edges`, per bucket of positions in the window
    (`bpc/to<edge>`: positions from the previous edge up to this one) — length generalisation read
    from one pass over windows longer than the training length."""

    def __init__(self, edges: list[int] = ()):
        self.nats, self.count, self.edges = 0.0, 0, list(edges)
        self.bucket_nats, self.bucket_count = [0.0] * len(self.edges), [0] * len(self.edges)

    def update(self, logits, inputs, targets):
        self.nats += F.cross_entropy(logits.double().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum").item()
        scored = targets != IGNORE
        self.count += int(scored.sum())
        if not self.edges:
            return
        nats = F.cross_entropy(logits.double().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
        low = 0
        for index, edge in enumerate(self.edges):
            self.bucket_nats[index] += nats[:, low:edge].sum().item()
            self.bucket_count[index] += int(scored[:, low:edge].sum())
            low = edge

    def result(self):
        metrics = {"bpc": self.nats / max(self.count, 1) / math.log(2), "scored_bytes": float(self.count)}
        for edge, nats, count in zip(self.edges, self.bucket_nats, self.bucket_count):
            if count:
                metrics[f"bpc/to{edge}"] = nats / count / math.log(2)
        return metrics
