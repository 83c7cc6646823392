"""The GateLoop recurrence written out literally in float64 / complex128: the yardstick for every mode.

    h_n = a_n ⊙ h_{n-1} + k_nᵀ v_n,     y_n = Re(q_n h_n)
"""
from __future__ import annotations

import torch


def gateloop_reference(q, k, v, a, initial_state=None):
    """(y, final_state) in float64 / complex128, whatever the input precision."""
    q, k, v = q.double(), k.double(), v.double()
    a = a.to(torch.complex128)
    batch, _, heads, dk = q.shape
    h = torch.zeros(batch, heads, dk, v.shape[-1], dtype=torch.complex128, device=q.device)
    if initial_state is not None:
        h = initial_state.to(torch.complex128)
    outputs = []
    # unbind, not q[:, t]: indexing makes backward O(L²), and the reference must scale to L = 16384
    for q_t, k_t, v_t, a_t in zip(q.unbind(1), k.unbind(1), v.unbind(1), a.unbind(1)):
        h = a_t[..., None] * h + k_t[..., None] * v_t[..., None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q_t, h.real))
    return torch.stack(outputs, dim=1), h
