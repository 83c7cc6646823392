"""The output norm of the 2024 gated mixers (GLA, Gated DeltaNet, Mamba-2): RMSNorm over each head's
values and a SiLU gate from a projection of the input — fla's `FusedRMSNormGated` (norm, then gate)
and mamba-ssm's `RMSNormGated` as Mamba-2 uses it (gate, then norm: `norm_before_gate=False`),
written out (docs/sources.md)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedRMSNorm(nn.Module):
    def __init__(self, width: int, *, eps: float = 1e-5, gate_first: bool = False):
        super().__init__()
        self.eps, self.gate_first = eps, gate_first
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
        """x (..., width) normalised over its last dimension and gated by SiLU(gate) (same shape,
        when given): after the norm, or before it with `gate_first`."""
        if gate is not None and self.gate_first:
            x = x * F.silu(gate)
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return normed if gate is None or self.gate_first else normed * F.silu(gate)
