"""Recurrent mode, O(L): the decoding step applied position by position."""
from __future__ import annotations

import torch


def gateloop_step(q_t, k_t, v_t, a_t, state):
    """One token: q_t, k_t (B, H, dk), v_t (B, H, dv), a_t (B, H, dk) complex, state (B, H, dk, dv)."""
    state = a_t.unsqueeze(-1) * state + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
    y_t = (q_t.unsqueeze(-1) * state.real).sum(-2)
    return y_t, state


def gateloop_recurrent(q, k, v, a, initial_state):
    outputs = []
    state = initial_state
    for q_t, k_t, v_t, a_t in zip(q.unbind(1), k.unbind(1), v.unbind(1), a.unbind(1)):
        y_t, state = gateloop_step(q_t, k_t, v_t, a_t, state)
        outputs.append(y_t)
    return torch.stack(outputs, dim=1), state
