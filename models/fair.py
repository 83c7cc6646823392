"""Equal-parameter comparisons: solve a model's widths so its parameter count lands within ±2% of a target.

What is solved: `d_model` (coarse — each mixer constrains it: heads must divide it, RetNet's head
dimension must be even, …) and then the MLP's hidden width (fine — one hidden unit is 2·d_model + 1
parameters, ~0.2% of a d_model = 64 model). Solving only d_model misses ±2% at small sizes (RetNet
with 4 heads moves in steps of 8, i.e. ±12% at d_model = 64); solving a mixer's own inner width
would need a knob every mixer lacks. So matching needs an MLP (mlp_ratio > 0): among the widths whose
MLP can absorb the rest, the one whose MLP ratio stays closest to the nominal `mlp_ratio` wins, so the
models compared keep the same shape of block. Parameters are counted on PyTorch's meta device (no
memory, no compute).
"""
from __future__ import annotations

import functools
import json
from typing import Any

import torch

from seqbench.models.backbone import LanguageModel

TOLERANCE = 0.02


def count_parameters(*, d_model: int, **lm_options: Any) -> int:
    """Parameter count without allocating memory (the model is built on the meta device)."""
    with torch.device("meta"):
        return LanguageModel(d_model=d_model, **lm_options).num_parameters()


@functools.lru_cache(maxsize=4096)
def _without_mlp(d_model: int, key: str) -> int | None:
    """Parameters with no MLP at this width; None where the mixers reject the width."""
    try:
        return count_parameters(d_model=d_model, mlp_ratio=0, **json.loads(key))
    except ValueError:
        return None


def mlp_parameters(d_model: int, hidden: int) -> int:
    """Linear(d, h) + Linear(h, d) with biases, and the MLP's RMSNorm."""
    return 2 * d_model * hidden + hidden + 2 * d_model if hidden else 0


def solve_widths(target: int, *, mlp_ratio: int, vocab_size: int, n_layers: int, mixer, mixer_options=None,
                 tolerance: float = TOLERANCE, max_d_model: int = 8192) -> tuple[int, int, int]:
    """(d_model, mlp_hidden, parameters) within ±tolerance of `target`; raises naming the closest miss."""
    if not isinstance(target, int) or target < 1:
        raise ValueError(f"target_parameters must be a positive integer, got {target!r}")
    if not mlp_ratio:
        raise ValueError("parameter matching solves d_model and the MLP width, so it needs an MLP: set model.mlp_ratio > 0")
    key = json.dumps({"vocab_size": vocab_size, "n_layers": n_layers, "mixer": mixer, "mixer_options": mixer_options or {}},
                     sort_keys=True)

    def nominal(d: int) -> int | None:
        base = _without_mlp(d, key)
        return None if base is None else base + n_layers * mlp_parameters(d, mlp_ratio * d)

    low, high = 1, max_d_model  # the largest width whose nominal model still fits under the target
    while low < high:
        middle = (low + high + 1) // 2
        probe = next((nominal(d) for d in range(middle, min(middle + 64, max_d_model + 1)) if nominal(d) is not None), None)
        if probe is not None and probe <= target:
            low = middle
        else:
            high = middle - 1
    best, closest = None, None
    for d_model in range(max(1, low - 16), min(max_d_model, low + 16) + 1):
        base = _without_mlp(d_model, key)
        if base is None or base >= target:
            continue
        per_layer = (target - base) / n_layers  # what each MLP must hold
        hidden = max(1, round((per_layer - 2 * d_model) / (2 * d_model + 1)))
        count = base + n_layers * mlp_parameters(d_model, hidden)
        gap = abs(count - target) / target
        if closest is None or gap < closest[1]:
            closest = (d_model, gap)
        if gap <= tolerance:
            shape = abs(hidden / d_model - mlp_ratio)
            if best is None or shape < best[0]:
                best = (shape, d_model, hidden, count)
    if best is None:
        hint = f" (closest: d_model={closest[0]}, off by {closest[1]:.1%})" if closest else ""
        raise ValueError(f"no width gives {mixer} within ±{tolerance:.0%} of {target:,} parameters{hint}")
    return best[1], best[2], best[3]
