"""The diagonal-plus-low-rank (generalised delta) rule written out, one step at a time, as a matrix
product, in whatever precision it is given (the tests give float64): the yardstick of ops.py.

    S_t = (diag(exp g_t) + b_t a_tᵀ) S_{t−1} + k_t v_tᵀ,    o_t = S_tᵀ q_t        (per head: S is d_k × d_v)
RWKV-7 takes a = −κ̂ and b = κ̂ ⊙ a_rate (arXiv 2503.14456): the transition diag(w) − (κ̂ ⊙ a_rate) κ̂ᵀ.
"""
from __future__ import annotations

import torch


def dplr_reference(q, k, v, a, b, log_decay, initial_state=None):
    """q, k, a, b, log_decay (B, L, H, K); v (B, L, H, V) → o (B, L, H, V), final state (B, H, K, V)."""
    batch, length, heads, keys = q.shape
    state = q.new_zeros(batch, heads, keys, v.shape[-1]) if initial_state is None else initial_state
    outputs = []
    for t in range(length):
        transition = torch.diag_embed(log_decay[:, t].exp()) + b[:, t, :, :, None] * a[:, t, :, None, :]
        state = transition @ state + k[:, t, :, :, None] * v[:, t, :, None, :]
        outputs.append(torch.einsum("bhkv,bhk->bhv", state, q[:, t]))
    return torch.stack(outputs, 1), state
