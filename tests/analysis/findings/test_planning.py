"""The rules that extend a finding's lr grid and plan its seeds (analysis/findings/planning.py)."""
import math

import pandas as pd
import pytest

from seqbench.analysis.findings.planning import MAX_SEEDS, extended_grid, half_width, plan_seeds

GRID = [3e-3, 1e-2, 3e-2]
CANDIDATES = [1e-3, 3e-3, 1e-2, 3e-2, 9e-2, 0.27]


def arm_runs(means: dict[float, float], metric: str = "validation_bpc", *, diverged: tuple[float, ...] = ()) -> pd.DataFrame:
    """Three seeds at every lr a plan could reach: finished (at `means[lr]` ± 0.01 by seed) where
    `means` has the lr, diverged at `diverged`, pending elsewhere."""
    rows = []
    for lr in CANDIDATES:
        for seed in range(3):
            status = "completed" if lr in means else "diverged" if lr in diverged else "pending"
            value = means[lr] + (seed - 1) / 100 if lr in means else math.nan
            rows.append({"lr": lr, "seed": seed, "status": status, metric: value})
    return pd.DataFrame(rows)


def test_an_interior_optimum_needs_no_extension():
    plan = extended_grid(GRID, arm_runs({3e-3: 2.0, 1e-2: 1.8, 3e-2: 1.9}), metric="final_bpc")
    assert plan.grid == tuple(GRID) and plan.extensions == () and not plan.at_edge


def test_an_optimum_at_the_top_extends_the_grid_once_its_runs_are_in_and_again_if_it_moves():
    partial = extended_grid(GRID, arm_runs({3e-3: 2.0, 1e-2: 1.9}), metric="final_bpc")  # 3e-2 not finished: nothing decided
    assert partial.grid == tuple(GRID)
    first = extended_grid(GRID, arm_runs({3e-3: 2.0, 1e-2: 1.9, 3e-2: 1.8}), metric="final_bpc")
    assert first.grid == (3e-3, 1e-2, 3e-2, 9e-2) and first.extensions[0].startswith("0.09 added: 0.03 was best at the top")
    second = extended_grid(GRID, arm_runs({3e-3: 2.0, 1e-2: 1.9, 3e-2: 1.8, 9e-2: 1.7}), metric="final_bpc")
    assert second.grid[-1] == pytest.approx(0.27) and len(second.extensions) == 2 and not second.at_edge
    third = extended_grid(GRID, arm_runs({3e-3: 2.0, 1e-2: 1.9, 3e-2: 1.8, 9e-2: 1.7, 0.27: 1.6}), metric="final_bpc")
    assert third.grid == second.grid and third.at_edge  # two extensions up: flagged, not extended further


def test_an_extension_that_diverges_loses_and_the_grid_is_decided():
    """A diverged run has finished (its lr was too high): the grid is decided, and the lr below it wins."""
    plan = extended_grid(GRID, arm_runs({3e-3: 2.0, 1e-2: 1.9, 3e-2: 1.8}, diverged=(9e-2,)), metric="final_bpc")
    assert plan.grid == (3e-3, 1e-2, 3e-2, 9e-2) and not plan.at_edge and len(plan.extensions) == 1


def test_an_optimum_at_the_bottom_extends_downward_for_a_metric_where_higher_is_better():
    plan = extended_grid(GRID, arm_runs({3e-3: 0.9, 1e-2: 0.8, 3e-2: 0.7}, "validation_accuracy"), metric="final_accuracy")
    assert plan.grid[0] == pytest.approx(1e-3) and len(plan.grid) == 4


def test_seed_plans_reach_half_the_margin_or_say_they_are_capped():
    plan = plan_seeds([0.001, 0.004, -0.002], margin=0.02)
    assert plan.seeds == 3 and plan.expected_half_width <= 0.01 and not plan.capped
    wide = plan_seeds([0.0, 0.012, 0.024], margin=0.02)  # sd 0.012: 9 seeds
    assert wide.seeds > 3 and half_width(wide.pilot_sd, wide.seeds) <= 0.01 < half_width(wide.pilot_sd, wide.seeds - 1)
    hopeless = plan_seeds([0.05, -0.05, 0.0], margin=0.02)
    assert hopeless.seeds == MAX_SEEDS and hopeless.capped and "may stay inconclusive" in hopeless.reason
    with pytest.raises(ValueError, match="pilot of 3 paired seeds"):
        plan_seeds([0.01, 0.02], margin=0.02)
