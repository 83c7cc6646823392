"""The output norm of the 2024 gated mixers (GLA, Gated DeltaNet, Mamba-2): RMSNorm over each head's
values, then a SiLU gate from a projection of the input — fla's `FusedRMSNormGated` and mamba-ssm's
`RMSNormGated` (norm before gate), written out (docs/sources.md)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedRMSNorm(nn.Module):
    def __init__(self, width: int, *, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
        """x (..., heads, width) normalised per head; × SiLU(gate) (same shape) when a gate is given."""
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return normed if gate is None else normed * F.silu(gate)
