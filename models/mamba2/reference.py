"""Mamba-2's selective SSM written out, one step at a time, as the paper writes it (a scalar decay
per head), in whatever precision it is given (the tests give float64): the layer's yardstick.

    h_t = exp(Δ_t A) h_{t−1} + Δ_t x_t B_tᵀ,   y_t = h_t C_t        (per head: h is head_dim × d_state)
"""
from __future__ import annotations

import torch


def ssd_reference(x, dt, A, Bm, C):
    """x (B, L, H, P); dt (B, L, H); A (H) negative; Bm, C (B, L, N) shared by every head →
    y (B, L, H, P) (without the skip D x), final state (B, H, N, P)."""
    batch, length, heads, width = x.shape
    h = x.new_zeros(batch, heads, width, Bm.shape[-1])
    ys = []
    for t in range(length):
        h = torch.exp(dt[:, t, :, None, None] * A[:, None, None]) * h + dt[:, t, :, None, None] * x[:, t, :, :, None] * Bm[:, t, None, None, :]
        ys.append((h * C[:, t, None, None, :]).sum(-1))
    return torch.stack(ys, 1), h.transpose(-1, -2)
