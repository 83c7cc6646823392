"""dplr_delta_rule(q, k, v, a, b, log_decay, *, mode, chunk_size, initial_state) → (o, final state):
the diagonal-plus-low-rank rule of RWKV-7 in every mode behind one call, each tested against
reference.py (outputs, final state, gradients) at odd lengths and several chunk sizes.

    S_t = (diag(exp g_t) + b_t a_tᵀ) S_{t−1} + k_t v_tᵀ,    o_t = S_tᵀ q_t

    recurrent   the rule as an update: u = S_{t−1}ᵀ a_t; S ← exp(g_t) ⊙ S + b_t uᵀ + k_t v_tᵀ
    chunked     inside a chunk of C tokens, with G the cumulative log decay from the chunk's start
                (per key channel), the read-outs u_t = S_{t−1}ᵀ a_t solve one unit-lower-triangular
                system, (I − A_ab) U = A_ak V + (e^{G_{t−1}} ⊙ a_t)ᵀ S₀, where
                A_xy[t, s] = Σ_d x_{t,d} y_{s,d} e^{G_{t−1,d} − G_{s,d}} (s < t); then
                o_t = (e^{G_t} ⊙ q_t)ᵀ S₀ + Σ_{s≤t} Σ_d q_{t,d} e^{G_{t,d} − G_{s,d}} (b_{s,d} u_s + k_{s,d} v_s)
                and S_C = e^{G_C} ⊙ S₀ + Σ_s e^{G_C − G_s} ⊙ (b_s u_sᵀ + k_s v_sᵀ). Every decay is exp of a
                difference ≤ 0 (fla's generalized_delta_rule/dplr, naive chunk form).

Shapes: q, k, a, b, log_decay (B, L, H, K); v (B, L, H, V); state (B, H, K, V).
"""
from __future__ import annotations

import torch

MODES = ("recurrent", "chunked")


def dplr_recurrent(q, k, v, a, b, log_decay, state):
    outputs = []
    for t in range(q.shape[1]):
        read = torch.einsum("bhkv,bhk->bhv", state, a[:, t])
        state = state * log_decay[:, t].exp().unsqueeze(-1) + b[:, t].unsqueeze(-1) * read.unsqueeze(-2) \
            + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        outputs.append(torch.einsum("bhkv,bhk->bhv", state, q[:, t]))
    return torch.stack(outputs, 1), state


def _pairs(x, y, decay):
    """[t, s] = Σ_d x_{t,d} y_{s,d} decay[t, s, d]: (B, H, C, K) × (B, H, C, K) × (B, H, C, C, K) → (B, H, C, C)."""
    return torch.einsum("bhtk,bhsk,bhtsk->bhts", x, y, decay)


def dplr_chunked(q, k, v, a, b, log_decay, state, chunk_size: int):
    outputs = []
    for start in range(0, q.shape[1], chunk_size):
        qc, kc, vc, ac, bc, gc = (t[:, start:start + chunk_size].transpose(1, 2) for t in (q, k, v, a, b, log_decay))  # (B, H, C, ·)
        cumulative = gc.cumsum(2)  # G_t
        before = cumulative - gc  # G_{t−1}
        size = qc.shape[2]
        lower = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
        to_t = torch.where(lower[..., None], cumulative[:, :, :, None] - cumulative[:, :, None], float("-inf")).exp()  # e^{G_t − G_s}, s ≤ t
        to_before = torch.where(lower.tril(-1)[..., None], before[:, :, :, None] - cumulative[:, :, None],
                                float("-inf")).exp()  # e^{G_{t−1} − G_s}, s < t
        system = torch.eye(size, dtype=q.dtype, device=q.device) - _pairs(ac, bc, to_before)
        right = _pairs(ac, kc, to_before) @ vc + (ac * before.exp()) @ state
        read = torch.linalg.solve_triangular(system, right, upper=False, unitriangular=True)  # u_t = S_{t−1}ᵀ a_t
        out = (qc * cumulative.exp()) @ state + _pairs(qc, bc, to_t) @ read + _pairs(qc, kc, to_t) @ vc
        outputs.append(out.transpose(1, 2))
        to_end = (cumulative[:, :, -1:] - cumulative).exp()
        state = state * cumulative[:, :, -1].exp().unsqueeze(-1) + (bc * to_end).transpose(-1, -2) @ read \
            + (kc * to_end).transpose(-1, -2) @ vc
    return torch.cat(outputs, 1), state


def dplr_delta_rule(q, k, v, a, b, log_decay, *, mode: str = "chunked", chunk_size: int = 16, initial_state=None):
    if mode not in MODES:
        raise ValueError(f"unknown RWKV-7 rule mode {mode!r}; valid modes: {', '.join(MODES)}")
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[3]) if initial_state is None else initial_state
    if mode == "recurrent":
        return dplr_recurrent(q, k, v, a, b, log_decay, state)
    return dplr_chunked(q, k, v, a, b, log_decay, state, chunk_size)
