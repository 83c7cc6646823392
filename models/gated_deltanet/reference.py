"""The gated delta rule written out, one step at a time, as the paper writes it, in whatever
precision it is given (the tests give float64): the yardstick of ops.py.

    S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,    o_t = S_tᵀ q_t      (per head: S is d_k × d_v)
α_t = 1 is DeltaNet's rule (arXiv 2406.06484), α_t ∈ (0, 1) Gated DeltaNet's (arXiv 2412.06464).
"""
from __future__ import annotations

import torch


def delta_rule_reference(q, k, v, beta, log_decay, initial_state=None):
    """q, k (B, L, H, K); v (B, L, H, V); beta, log_decay (B, L, H) → o (B, L, H, V), final state (B, H, K, V)."""
    batch, length, heads, keys = q.shape
    state = q.new_zeros(batch, heads, keys, v.shape[-1]) if initial_state is None else initial_state
    identity = torch.eye(keys, dtype=q.dtype, device=q.device)
    outputs = []
    for t in range(length):
        alpha, b = log_decay[:, t].exp()[..., None, None], beta[:, t][..., None, None]
        k_t = k[:, t]
        transition = alpha * (identity - b * k_t[..., :, None] * k_t[..., None, :])
        state = transition @ state + b * k_t[..., :, None] * v[:, t, :, None, :]
        outputs.append(torch.einsum("bhkv,bhk->bhv", state, q[:, t]))
    return torch.stack(outputs, 1), state
