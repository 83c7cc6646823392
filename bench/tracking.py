"""Live curves while a run trains, for researchers who watch a sweep in TensorBoard or W&B.

Optional and additive: a run config's `tracking = ["tensorboard", "wandb"]` sends every metrics row
(train loss, lr, throughput; each validation result) to the chosen trackers as it is recorded. The
run's own files (metrics.jsonl, then the parquet tables) stay the source of truth; a tracker is a
view. Tracking is an execution setting: it never changes a run's id.

- tensorboard: event files in the run's folder (`<run>/tensorboard/`); a resumed run purges the
  steps after its checkpoint, so a preempted run's curve has no doubled segment.
- wandb: the run's id is the W&B run id (`resume="allow"`), so a requeued job continues its curve;
  project from $WANDB_PROJECT (default "seqbench"); `WANDB_MODE=offline` works without network.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

TRACKERS = {"tensorboard": ("tensorboard", "pip install tensorboard"), "wandb": ("wandb", "pip install wandb")}


def check_trackers(names: list[str]) -> None:
    """At config time: each tracker known and its package importable, else the install command."""
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"unknown tracker {name!r}; valid: {', '.join(TRACKERS)}")
        module, install = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"tracking {name!r} needs the package {module!r}, which is not installed here: {install} "
                             "(or pip install 'seqbench[tracking]')")


class Trackers:
    """The trackers of one run, opened at its (re)start at `step`."""

    def __init__(self, names: list[str], *, run_id: str, folder: Path, config: dict[str, Any], step: int):
        self.writers = []
        if "tensorboard" in names:
            from torch.utils.tensorboard import SummaryWriter

            self.writers.append(_TensorBoard(SummaryWriter(log_dir=str(folder / "tensorboard"), purge_step=step or None)))
        if "wandb" in names:
            import wandb

            run = wandb.init(project=os.environ.get("WANDB_PROJECT", "seqbench"), id=run_id, name=run_id, resume="allow",
                             dir=str(folder), config=config, reinit=True)
            self.writers.append(_WandB(run))

    def log(self, row: dict[str, Any]) -> None:
        """One metrics row: {"step", "split", metric: value, …} → scalars named split/metric."""
        scalars = {f"{row['split']}/{key}": float(value) for key, value in row.items()
                   if key not in ("step", "split") and isinstance(value, (int, float)) and not isinstance(value, bool)}
        for writer in self.writers:
            writer.log(scalars, row["step"])

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class _TensorBoard:
    def __init__(self, writer):
        self.writer = writer

    def log(self, scalars: dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, run):
        self.run = run

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()
