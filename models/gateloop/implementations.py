"""GateLoop's op implementations side by side, as the op benchmark (bench/op_speed.py) times them:
their names, the inputs they are timed on, and each one's error against float64.

Every entry runs what it says: "chunked" is the layer's chunked mode (rotated.py, one transition per
head), the per-channel chunked op is listed under its own name.
"""
from __future__ import annotations

import torch

from seqbench.models.conformance import relative_error
from seqbench.models.gateloop.ops import PER_CHANNEL_CHUNKED, gateloop
from seqbench.models.gateloop.reference import gateloop_reference

IMPLEMENTATIONS = {  # name → gateloop() keyword arguments
    "default (compiled recurrent)": {"mode": "recurrent", "backend": "auto"},
    "torch recurrent loop": {"mode": "recurrent", "backend": "torch"},
    "doubling scan (Hillis-Steele)": {"mode": "scan", "scan_method": "doubling"},
    "odd/even recursive scan (re-implementation)": {"mode": "scan", "scan_method": "odd_even"},
    "chunked, rotated (the layer's, C=64)": {"mode": "chunked", "chunk_size": 64},
    "chunked per channel (C=64)": {"mode": PER_CHANNEL_CHUNKED, "chunk_size": 64},
}


def op_inputs(batch: int, length: int, channels: int, dtype=torch.float32, seed: int = 0):
    """q, k, v and a at max heads (one complex scalar of state per channel), |a| in [½, 1)."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, length, channels, 1, generator=g, dtype=dtype) for _ in range(3))
    magnitude = 0.5 + 0.5 * torch.rand(batch, length, channels, 1, generator=g, dtype=dtype)
    a = torch.polar(magnitude, torch.rand(batch, length, channels, 1, generator=g, dtype=dtype) * 2 - 1)
    return q, k, v, a


def error_against_float64(options: dict, batch: int, length: int, channels: int) -> float:
    """Largest relative error of the output and of d/dq, d/dk, d/dv, d/da against the float64 reference."""
    inputs = op_inputs(batch, length, channels)
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    weight = torch.randn(batch, length, channels, 1, generator=torch.Generator().manual_seed(1))
    y, _ = gateloop(*leaves, **options)
    (y * weight).sum().backward()
    doubles = [t.to(torch.complex128 if t.is_complex() else torch.float64).requires_grad_(True) for t in inputs]
    y_ref, _ = gateloop_reference(*doubles)
    (y_ref * weight.double()).sum().backward()
    return max([relative_error(y, y_ref), *(relative_error(leaf.grad, ref.grad) for leaf, ref in zip(leaves, doubles))])
