"""What a finding runs beyond its first pass, decided by rules written before any run, so that no
result ever chooses its own sample (Zoology / MAD practice; the findings issue's protocol).

- **Grid extension.** An arm whose chosen lr (analysis/protocol.choose_lr) sits at an edge of its
  grid gets one more lr beyond that edge (×3 up, ÷3 down), once its whole grid has finished; at most
  `MAX_EXTENSIONS` times per direction. An arm still at the edge after that is flagged, not extended.
- **Seed plans.** A "similar" rule (an equivalence margin m) needs enough seeds that the interval it
  judges can fit inside ±m: from a pilot (the first seeds), the per-seed spread s of the paired
  differences gives the smallest n with t(0.975, n − 1)·s/√n ≤ m/2, capped at `MAX_SEEDS`. The plan
  is computed once, when the pilot is complete, and written down; it never grows because a verdict
  looked close. "Better" rules use the pilot's seeds (at least 3).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from seqbench.analysis.findings.scales import SEEDS
from seqbench.analysis.protocol import choose_lr

GRID_STEP = 3.0
MAX_EXTENSIONS = 2
MAX_SEEDS = 10
PILOT_SEEDS = len(SEEDS)  # every arm's first seeds: the lr is chosen on them, seed plans start from them


@dataclass(frozen=True)
class GridPlan:
    grid: tuple[float, ...]  # every lr to run, the extensions included, sorted
    extensions: tuple[str, ...]  # what was added and why, for the report
    at_edge: bool  # chosen at an edge that may not be extended further


def extended_grid(base: list[float], runs: pd.DataFrame, *, metric: str) -> GridPlan:
    """The lrs an arm runs, from its base grid and its runs so far (`runs`: one row per run the plan
    may ask for — `lr`, `seed`, `status` and the validation metric of `metric` — unfinished ones
    included). Extensions are decided one at a time, each once every seed of every lr of the grid
    before it has finished; which lr is best is protocol.choose_lr's answer, the one lr rule."""
    grid, extensions = sorted(base), []
    added = {"up": 0, "down": 0}
    while True:
        of_grid = runs[runs["lr"].isin(grid)]
        chosen = choose_lr(of_grid, metric=metric, groups=[], lr="lr") if set(of_grid["lr"]) == set(grid) else of_grid.iloc[:0]
        if chosen.empty or "chosen_lr" not in chosen.columns:
            return GridPlan(tuple(grid), tuple(extensions), at_edge=False)  # runs outstanding: decided when they finish
        best = float(chosen["chosen_lr"].iloc[0])
        direction = "up" if best == grid[-1] else "down" if best == grid[0] else None
        if direction is None:
            return GridPlan(tuple(grid), tuple(extensions), at_edge=False)
        if added[direction] == MAX_EXTENSIONS:
            return GridPlan(tuple(grid), tuple(extensions), at_edge=True)
        new = best * GRID_STEP if direction == "up" else best / GRID_STEP
        extensions.append(f"{new:.3g} added: {best:.3g} was best at the {'top' if direction == 'up' else 'bottom'} of "
                          f"{grid[0]:.3g}…{grid[-1]:.3g}")
        added[direction] += 1
        grid = sorted([*grid, float(f"{new:.6g}")])


@dataclass(frozen=True)
class SeedPlan:
    seeds: int
    pilot_seeds: int
    pilot_sd: float | None
    margin: float
    expected_half_width: float | None
    capped: bool
    reason: str

    def as_record(self) -> dict:
        return asdict(self)


def half_width(sd: float, n: int) -> float:
    return float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def plan_seeds(pilot_differences: list[float], margin: float) -> SeedPlan:
    """Seeds a "similar" rule needs for an expected 95% half-width of at most half its margin."""
    pilot = np.asarray(pilot_differences, dtype=float)
    if len(pilot) < PILOT_SEEDS:
        raise ValueError(f"a seed plan needs a pilot of {PILOT_SEEDS} paired seeds, got {len(pilot)}")
    sd = float(pilot.std(ddof=1))
    for n in range(PILOT_SEEDS, MAX_SEEDS + 1):
        if half_width(sd, n) <= margin / 2:
            return SeedPlan(n, len(pilot), sd, margin, half_width(sd, n), False,
                            f"pilot sd {sd:.4g}: {n} seeds give an expected half-width {half_width(sd, n):.4g} ≤ margin/2")
    return SeedPlan(MAX_SEEDS, len(pilot), sd, margin, half_width(sd, MAX_SEEDS), True,
                    f"pilot sd {sd:.4g}: even {MAX_SEEDS} seeds give {half_width(sd, MAX_SEEDS):.4g} > margin/2 "
                    f"({margin / 2:.4g}); capped at {MAX_SEEDS}, the rule may stay inconclusive")
