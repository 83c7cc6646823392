"""The comparison protocol, written down as code: best learning rate chosen on validation, test
reported; intervals over seeds only; two arms compared through their per-seed differences.

Why: a single learning rate ranks models by their sensitivity to it (on the demo, softmax attention
goes from 0.04 to 1.00 accuracy across lr 1e-4 … 1e-2 while RetNet peaks at 0.27), so each model
gets its best lr from a grid — chosen on validation, never on test (Zoology, arXiv 2312.04927).
Seeds fix the data stream and the initialisation for every arm alike, so the differences between
two arms at the same seed are the paired observations; with fewer than 3 seeds no interval is shown.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from seqbench.analysis.collect import varying_columns

LR = "optimizer.lr"
MIN_SEEDS_FOR_INTERVAL = 3


def validation_metric(test_metric: str) -> str:
    """final_accuracy (reported on test) → validation_accuracy (what the lr is chosen on)."""
    return "validation_" + test_metric.removeprefix("final_")


def configuration_columns(runs: pd.DataFrame) -> list[str]:
    """The sweep's axes that define a configuration: every varying axis but lr (chosen) and seed (repeats)."""
    return [c for c in varying_columns(runs) if c != LR]


def best_over_lr(runs: pd.DataFrame, *, metric: str, higher_is_better: bool) -> pd.DataFrame:
    """Per configuration and seed: the run with the best validation metric; its test metric, its lr,
    and whether that lr sits at the edge of the grid tried (the optimum may lie outside it)."""
    selector = validation_metric(metric)
    if selector not in runs.columns:
        raise ValueError(f"best-over-lr needs {selector!r} (the validation metric of each run); the runs hold no such column")
    done = runs[runs[selector].notna() & runs[metric].notna()].copy()
    groups = configuration_columns(done)
    keys = [*groups, "seed"]
    order = done.sort_values(selector, ascending=not higher_is_better, kind="stable")
    best = order.groupby(keys, dropna=False, sort=True).head(1).copy()
    grid = done.groupby(groups, dropna=False)[LR].agg(["min", "max", "nunique"]) if groups else None
    if grid is not None:
        best = best.join(grid, on=groups)
    else:
        best["min"], best["max"], best["nunique"] = done[LR].min(), done[LR].max(), done[LR].nunique()
    best["lr_at_edge"] = (best["nunique"] > 1) & ((best[LR] == best["min"]) | (best[LR] == best["max"]))
    best = best.drop(columns=["min", "max", "nunique"]).rename(columns={LR: "chosen_lr"})
    best["protocol"] = f"best lr on validation ({selector}), {metric} reported"
    edge = best[best["lr_at_edge"]]
    if len(edge):
        where = ", ".join(sorted({" ".join(f"{g}={row[g]}" for g in groups) or "all" for _, row in edge.iterrows()}))
        warnings.warn(f"the best lr is at the edge of the grid for: {where}; widen the grid", stacklevel=2)
    return best.reset_index(drop=True)


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean ± Student-t half-width over independent seeds; (nan, nan) with fewer than 2 values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return (math.nan, math.nan)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return (values.mean() - half, values.mean() + half)


def paired_difference(table: pd.DataFrame, *, arm: str, a, b, value: str, pair: str = "seed",
                      confidence: float = 0.95) -> dict:
    """Mean of (a − b) over the seeds both arms have, with a t-interval on the per-seed differences."""
    wide = table[table[arm].isin([a, b])].pivot_table(index=pair, columns=arm, values=value, aggfunc="first")
    if a not in wide.columns or b not in wide.columns:
        raise ValueError(f"paired_difference: {arm} has no {a!r} or no {b!r} among {sorted(table[arm].unique(), key=str)}")
    differences = (wide[a] - wide[b]).dropna()
    low, high = t_interval(differences, confidence)
    return {"arm": arm, "a": a, "b": b, "value": value, "seeds": len(differences), "mean_difference": differences.mean(),
            "low": low, "high": high, "confidence": confidence, "differences": differences.tolist()}
