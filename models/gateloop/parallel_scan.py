"""Parallel mode, O(L log L): an associative scan over (a_n, k_nᵀ v_n), then y_n = Re(q_n H_n)."""
from __future__ import annotations

import torch

from seqbench.models.scan import linear_recurrence


def gateloop_scan(q, k, v, a, initial_state, *, method: str = "doubling"):
    inputs = (k.unsqueeze(-1) * v.unsqueeze(-2)).to(a.dtype)
    states = linear_recurrence(a.unsqueeze(-1), inputs, initial_state, method=method)
    y = torch.einsum("blhk,blhkv->blhv", q, states.real)
    return y, states[:, -1]
