"""Tasks behind one interface: get_batch(split, batch_size, seed) → (inputs, targets), and scoring."""
from seqbench.tasks import enwik8, mad, memory_horizon, mqar, state_tracking  # noqa: F401  (registers the tasks)
from seqbench.tasks.base import IGNORE, SPLITS, TASKS, Evaluation, Task

available, describe, options = TASKS.available, TASKS.describe, TASKS.options


def build(name: str, **task_options) -> Task:
    return TASKS.build(name, **task_options)


__all__ = ["IGNORE", "SPLITS", "Evaluation", "Task", "available", "build", "describe", "options"]
