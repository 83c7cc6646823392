"""Equal-parameter comparisons: pick each model's width so parameter counts match a target within ±5%."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from seqbench.models.backbone import LanguageModel

TOLERANCE = 0.05


def count_parameters(*, d_model: int, **lm_options: Any) -> int:
    """Parameter count without allocating memory (the model is built on the meta device)."""
    with torch.device("meta"):
        return LanguageModel(d_model=d_model, **lm_options).num_parameters()


def match_width(target_parameters: int, *, multiple_of: int = 8, max_d_model: int = 4096,
                tolerance: float = TOLERANCE, **lm_options: Any) -> int:
    """The d_model (a multiple of `multiple_of`) whose parameter count is closest to the target.

    `lm_options` are LanguageModel's other arguments (vocab_size, n_layers, mixer, mixer_options, …).
    Raises if the closest width misses the target by more than `tolerance`.
    """
    best, best_gap = None, float("inf")
    for d_model in range(multiple_of, max_d_model + 1, multiple_of):
        try:
            count = count_parameters(d_model=d_model, **lm_options)
        except ValueError:  # e.g. heads do not divide this width
            continue
        gap = abs(count - target_parameters) / target_parameters
        if gap < best_gap:
            best, best_gap = d_model, gap
        if count > target_parameters and best_gap <= tolerance:
            break
    if best is None or best_gap > tolerance:
        raise ValueError(
            f"no d_model (multiple of {multiple_of}, ≤ {max_d_model}) gives {lm_options.get('mixer')} within "
            f"±{tolerance:.0%} of {target_parameters:,} parameters (closest: d_model={best}, off by {best_gap:.1%})"
        )
    return best


def matched_widths(reference: Mapping[str, Any], mixers: Sequence[str],
                   mixer_options: Mapping[str, Mapping[str, Any]] | None = None, **kwargs: Any) -> dict[str, int]:
    """d_model per mixer so that each LM matches the parameter count of the `reference` LM config."""
    target = count_parameters(**reference)
    shared = {key: value for key, value in reference.items() if key not in ("d_model", "mixer", "mixer_options")}
    options = mixer_options or {}
    return {
        name: match_width(target, mixer=name, mixer_options=options.get(name, {}), **shared, **kwargs)
        for name in mixers
    }
