"""How long a sweep will take here, before it runs: each run's steps × its measured seconds per step.

A step's cost is measured, never guessed: from the sweep's own finished runs of the same shape
(wall time over steps, evaluations included) where there are some, else by timing a few training
steps of that shape on this machine (a probe: evaluations not included, so it errs low). Runs that
differ only in lr, weight decay or seed share a shape, so each shape is probed once.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass

from seqbench.bench.config import TrainConfig
from seqbench.bench.runner import Trainer
from seqbench.bench.store import FINISHED, Store
from seqbench.bench.sweep import Sweep

PROBE_STEPS = 3


@dataclass
class Estimate:
    runs: int
    finished: int
    seconds: float  # the unfinished runs' training, one at a time on this machine
    probed: int  # shapes timed by a probe (the rest from finished runs)

    def describe(self, parallel: int = 1) -> str:
        left = self.runs - self.finished
        if not left:
            return f"{self.runs} runs, all finished"
        how = "a probe of each shape" if self.probed else "the finished runs"
        return (f"{self.runs} runs, {self.finished} finished, {left} to run: ≈ {format_duration(self.seconds / max(parallel, 1))}"
                f" here at {max(parallel, 1)} at once (from {how})")


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def shape(config: TrainConfig) -> str:
    """A run's shape: its config without what leaves a step's cost unchanged (lr, weight decay, seed)."""
    data = config.model_dump(mode="json")
    data["optimizer"] = {k: v for k, v in data["optimizer"].items() if k not in ("lr", "weight_decay")}
    data.pop("seed", None)
    return repr(sorted(data.items()))


def probe_seconds_per_step(config: TrainConfig, steps: int = PROBE_STEPS) -> float:
    """Seconds per training step of `config` here: one warm-up step, then the mean of `steps`."""
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, Store(folder).run("estimate", config.run_id()), progress=False)
        trainer._train_step()
        started = time.perf_counter()
        for _ in range(steps):
            trainer._train_step()
        return (time.perf_counter() - started) / steps


def estimate(sweep: Sweep, root=None, *, probe=probe_seconds_per_step) -> Estimate:
    """The sweep's runs, how many have finished, and the seconds its unfinished training runs need
    (measurements — speed, throughput — are timed by their own budgets and count as 0 here)."""
    store = Store(root).sweep(sweep.name)
    measured: dict[str, list[float]] = {}
    finished, todo = 0, []
    for run in sweep.runs:
        run_dir = store.run(run.run_id())
        summary = (run_dir.read_summary() if run_dir.summary_path.exists() else None) or {}
        if summary.get("status") in FINISHED:
            finished += 1
            if isinstance(run, TrainConfig) and summary.get("steps") and summary.get("wall_time_s"):
                measured.setdefault(shape(run), []).append(summary["wall_time_s"] / summary["steps"])
        elif isinstance(run, TrainConfig):
            todo.append(run)
    per_step = {key: sum(values) / len(values) for key, values in measured.items()}
    probed = 0
    seconds = 0.0
    for run in todo:
        key = shape(run)
        if key not in per_step:
            per_step[key] = probe(run)
            probed += 1
        seconds += per_step[key] * max(run.steps - status_step(store.run(run.run_id())), 0)
    return Estimate(runs=len(sweep.runs), finished=finished, seconds=seconds, probed=probed)


def status_step(run_dir) -> int:
    """The step a preempted run resumes from (0 for one not started)."""
    status = (run_dir.read_status() if run_dir.status_path.exists() else None) or {}
    return int(status.get("step") or 0)
