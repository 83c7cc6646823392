"""The selective scan written out, one step at a time, in whatever precision it is given (the
tests give float64): the yardstick of every other implementation in this folder.

    h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t u_t B_tᵀ,   y_t = h_t C_t + D ⊙ u_t      (per channel: N states)
"""
from __future__ import annotations

import torch


def selective_scan_reference(u, dt, A, Bm, C, skip, initial_state=None, negative_eigenvalues: bool = False):
    """u, dt (B, L, D); A (D, N); Bm, C (B, L, N); skip (D) → y (B, L, D), final state (B, D, N);
    `negative_eigenvalues`: the decay is 2 exp(Δ_t A) − 1 ∈ (−1, 1) (arXiv 2411.12537)."""
    h = torch.zeros(u.shape[0], u.shape[2], A.shape[1], dtype=u.dtype, device=u.device) if initial_state is None else initial_state
    ys = []
    for t in range(u.shape[1]):
        decay = torch.exp(dt[:, t, :, None] * A)
        decay = 2 * decay - 1 if negative_eigenvalues else decay
        h = decay * h + dt[:, t, :, None] * u[:, t, :, None] * Bm[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1) + skip * u[:, t])
    return torch.stack(ys, 1), h
