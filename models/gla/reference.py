"""The gated linear-attention recurrence written out, one step at a time, in whatever precision it is
given (the tests give float64): the yardstick of ops.py.

    S_t = diag(exp(g_t)) S_{t−1} + k_tᵀ v_t,    o_t = q_t S_t        (per head: S is d_k × d_v)
"""
from __future__ import annotations

import torch


def gla_reference(q, k, v, log_decay, initial_state=None):
    """q, k (B, L, H, K); v (B, L, H, V); log_decay (B, L, H, K) or (B, L, H, 1) →
    o (B, L, H, V), final state (B, H, K, V)."""
    batch, length, heads, keys = q.shape
    state = q.new_zeros(batch, heads, keys, v.shape[-1]) if initial_state is None else initial_state
    outputs = []
    for t in range(length):
        decay = torch.exp(log_decay[:, t]).expand(batch, heads, keys)
        state = decay[..., None] * state + k[:, t, :, :, None] * v[:, t, :, None, :]
        outputs.append((q[:, t, :, :, None] * state).sum(-2))
    return torch.stack(outputs, 1), state
